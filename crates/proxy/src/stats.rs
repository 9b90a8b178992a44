//! Counters of the data path, with Envoy's names where Envoy has them, so that the seed
//! document's `curl -s localhost:15090/stats | grep ssl.handshake` works as written.
//!
//! Per-listener counters are plain atomics created at start (the ports are known), so the hot
//! path takes no lock. Requests by source principal go to a Prometheus family. The only lock
//! is per plaintext *connection* (not request): the bounded table of plaintext callers that
//! `sigil strict-readiness` reads.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Why a TLS handshake (or the step before it) failed. Each has its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// STRICT port, the client sent no certificate (`ssl.fail_verify_no_cert`).
    NoCertificate,
    /// The peer's chain does not lead to a trusted bundle (`ssl.fail_verify_error`).
    UnknownCa,
    /// The peer's certificate is expired or not yet valid (`ssl.fail_verify_error`).
    Expired,
    /// The peer's SPIFFE ID is not the expected one (`ssl.fail_verify_san`).
    SpiffeIdMismatch,
    /// Plaintext bytes on a STRICT port (`sigil.plaintext_to_strict`).
    PlaintextToStrict,
    /// TLS on a DISABLE port (`sigil.tls_to_plaintext`).
    TlsToPlaintext,
    /// No bytes / no complete handshake within the deadline.
    Timeout,
    /// ALPN or version mismatch, protocol errors, resets (`ssl.connection_error`).
    Other,
}

impl HandshakeFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::SpiffeIdMismatch => "spiffe_id_mismatch",
            HandshakeFailure::PlaintextToStrict => "plaintext_to_strict",
            HandshakeFailure::TlsToPlaintext => "tls_to_plaintext",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "connection_error",
        }
    }
}

/// Counters of one listener (an inbound port or an outbound upstream).
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub handshake: AtomicU64,
    pub connection_error: AtomicU64,
    pub fail_verify_no_cert: AtomicU64,
    pub fail_verify_error: AtomicU64,
    pub fail_verify_san: AtomicU64,
    pub expired: AtomicU64,
    pub plaintext_to_strict: AtomicU64,
    pub tls_to_plaintext: AtomicU64,
    pub handshake_timeout: AtomicU64,
    /// Connections accepted in plaintext (PERMISSIVE or DISABLE).
    pub plaintext: AtomicU64,
    /// Connections refused at the connection cap.
    pub overflow: AtomicU64,
    pub cx_total: AtomicU64,
    pub cx_active: AtomicI64,
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rbac_allowed: AtomicU64,
    pub rbac_denied: AtomicU64,
    pub rbac_shadow_allowed: AtomicU64,
    pub rbac_shadow_denied: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_2xx: AtomicU64,
    pub rq_3xx: AtomicU64,
    pub rq_4xx: AtomicU64,
    pub rq_5xx: AtomicU64,
    /// Who spoke plaintext to this port (inbound only), for `sigil strict-readiness`.
    pub plaintext_sources: Mutex<Sources>,
}

/// The most plaintext source addresses one port remembers; the least recently seen is
/// forgotten first (and counted in `dropped`).
pub const MAX_SOURCES: usize = 32;

/// Plaintext callers of one port by IP address (ports are ephemeral and left out).
#[derive(Debug, Default)]
pub struct Sources {
    pub by_ip: HashMap<IpAddr, Source>,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub connections: u64,
    /// Unix seconds.
    pub last_seen: i64,
    /// Whether the last connection was refused (STRICT).
    pub refused: bool,
}

impl Sources {
    fn saw(&mut self, ip: IpAddr, refused: bool, now: i64) {
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_SOURCES {
            let oldest = self
                .by_ip
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.by_ip.remove(&k);
                self.dropped += 1;
            }
        }
        let s = self.by_ip.entry(ip).or_insert(Source {
            connections: 0,
            last_seen: now,
            refused,
        });
        s.connections += 1;
        s.last_seen = now;
        s.refused = refused;
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl ListenerStats {
    pub fn handshake_ok(&self) {
        inc(&self.handshake);
    }

    pub fn handshake_failed(&self, why: HandshakeFailure) {
        match why {
            HandshakeFailure::NoCertificate => inc(&self.fail_verify_no_cert),
            HandshakeFailure::UnknownCa => inc(&self.fail_verify_error),
            HandshakeFailure::Expired => {
                inc(&self.fail_verify_error);
                inc(&self.expired);
            }
            HandshakeFailure::SpiffeIdMismatch => inc(&self.fail_verify_san),
            HandshakeFailure::PlaintextToStrict => inc(&self.plaintext_to_strict),
            HandshakeFailure::TlsToPlaintext => inc(&self.tls_to_plaintext),
            HandshakeFailure::Timeout => inc(&self.handshake_timeout),
            HandshakeFailure::Other => {}
        }
        inc(&self.connection_error);
    }

    /// A plaintext connection from `ip`: accepted (PERMISSIVE, DISABLE) or refused (STRICT,
    /// counted by [`handshake_failed`](Self::handshake_failed)).
    pub fn plaintext_from(&self, ip: IpAddr, refused: bool) {
        if !refused {
            inc(&self.plaintext);
        }
        self.plaintext_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saw(ip, refused, unix_now());
    }

    /// Counts an open connection until the guard drops.
    pub fn open(self: &Arc<Self>) -> ConnectionGuard {
        inc(&self.cx_total);
        self.cx_active.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    pub fn bytes(&self, rx: u64, tx: u64) {
        self.rx_bytes.fetch_add(rx, Ordering::Relaxed);
        self.tx_bytes.fetch_add(tx, Ordering::Relaxed);
    }

    /// An authorization decision (`dry_run`: the would-be decision of dry-run policies).
    pub fn rbac(&self, allowed: bool, dry_run: Option<bool>) {
        inc(if allowed {
            &self.rbac_allowed
        } else {
            &self.rbac_denied
        });
        match dry_run {
            Some(true) => inc(&self.rbac_shadow_allowed),
            Some(false) => inc(&self.rbac_shadow_denied),
            None => {}
        }
    }

    pub fn response(&self, status: u16) {
        inc(&self.rq_total);
        match status {
            200..=299 => inc(&self.rq_2xx),
            300..=399 => inc(&self.rq_3xx),
            400..=499 => inc(&self.rq_4xx),
            _ => inc(&self.rq_5xx),
        }
    }
}

/// Decrements `cx_active` when dropped.
pub struct ConnectionGuard(Arc<ListenerStats>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.cx_active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `inbound` or `outbound`.
    pub direction: String,
    pub port: u16,
    /// The peer's SPIFFE ID, or `unknown` for plaintext.
    pub source_principal: String,
    /// `allow` or `deny`.
    pub decision: String,
    pub response_code: u16,
}

/// All counters of the proxy.
pub struct Stats {
    inbound: BTreeMap<u16, Arc<ListenerStats>>,
    outbound: BTreeMap<String, Arc<ListenerStats>>,
    pub requests: Family<RequestLabels, Counter>,
    /// Connections refused or closed because the peer's certificate is revoked.
    pub revoked_peers: Family<crate::revocation::RevokedPeerLabels, Counter>,
    registry: Registry,
    /// notAfter of the current SVID (unix seconds), 0 before the first.
    pub cert_expiry: AtomicI64,
    /// The most recent refused connection or upstream failure: (unix seconds, what).
    last_error: Mutex<Option<(i64, String)>>,
}

impl Stats {
    /// Counters for these inbound ports and outbound listeners (`host:port` names).
    pub fn new(inbound_ports: &[u16], outbound_names: &[String]) -> Self {
        let mut registry = Registry::with_prefix("sigil_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests (HTTP) and connections (TCP) by direction, port, source principal, decision and response code",
            requests.clone(),
        );
        let revoked_peers = Family::<crate::revocation::RevokedPeerLabels, Counter>::default();
        registry.register(
            "revoked_peer",
            "Connections refused (new handshake) or closed (open connection) because the peer presented a revoked certificate, by direction and action",
            revoked_peers.clone(),
        );
        Stats {
            revoked_peers,
            inbound: inbound_ports.iter().map(|p| (*p, Arc::default())).collect(),
            outbound: outbound_names
                .iter()
                .map(|n| (n.clone(), Arc::default()))
                .collect(),
            requests,
            registry,
            cert_expiry: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The counters of inbound `port` (a fresh, unregistered set for an unknown port).
    pub fn inbound(&self, port: u16) -> Arc<ListenerStats> {
        self.inbound.get(&port).cloned().unwrap_or_default()
    }

    /// The counters of outbound listener `name` (`host:port`).
    pub fn outbound(&self, name: &str) -> Arc<ListenerStats> {
        self.outbound.get(name).cloned().unwrap_or_default()
    }

    /// Remembers `what` as the proxy's last error (reported to the agent).
    pub fn note_error(&self, what: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((unix_now(), what.into()));
    }

    /// The last error noted, if any.
    pub fn last_error(&self) -> Option<(i64, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Inbound ports and their counters.
    pub fn inbound_ports(&self) -> impl Iterator<Item = (u16, &Arc<ListenerStats>)> {
        self.inbound.iter().map(|(p, s)| (*p, s))
    }

    /// Counts a connection refused or closed for a revoked peer certificate.
    pub fn revoked_peer(&self, direction: &str, action: &str) {
        self.revoked_peers
            .get_or_create(&crate::revocation::RevokedPeerLabels {
                direction: direction.into(),
                action: action.into(),
            })
            .inc();
    }

    /// Counts one request or TCP connection.
    pub fn request(&self, labels: RequestLabels) {
        self.requests.get_or_create(&labels).inc();
    }

    fn each(&self) -> impl Iterator<Item = (String, &Arc<ListenerStats>)> {
        self.inbound
            .iter()
            .map(|(p, s)| (format!("listener.0.0.0.0_{p}"), s))
            .chain(
                self.outbound
                    .iter()
                    .map(|(n, s)| (format!("cluster.outbound|{n}"), s)),
            )
    }

    /// Envoy's `/stats` text: `name: value` lines, sorted.
    pub fn envoy_text(&self) -> String {
        let mut lines = Vec::new();
        for (prefix, s) in self.each() {
            for (name, v) in fields(s) {
                lines.push(format!("{prefix}.{name}: {v}"));
            }
        }
        lines.push(format!(
            "server.cert_expiry_timestamp_seconds: {}",
            self.cert_expiry.load(Ordering::Relaxed)
        ));
        lines.sort();
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }

    /// Prometheus text: the per-listener counters as labelled series, plus the families.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (prefix, s) in self.each() {
            for (name, v) in fields(s) {
                let metric = name.replace('.', "_");
                by_name
                    .entry(metric.clone())
                    .or_default()
                    .push(format!("sigil_proxy_{metric}{{listener=\"{prefix}\"}} {v}"));
            }
        }
        for (metric, series) in by_name {
            let _ = writeln!(out, "# TYPE sigil_proxy_{metric} gauge");
            for s in series {
                let _ = writeln!(out, "{s}");
            }
        }
        let _ = writeln!(
            out,
            "# TYPE sigil_proxy_cert_expiry_timestamp_seconds gauge\nsigil_proxy_cert_expiry_timestamp_seconds {}",
            self.cert_expiry.load(Ordering::Relaxed)
        );
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn fields(s: &ListenerStats) -> Vec<(&'static str, i64)> {
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
    vec![
        ("ssl.handshake", g(&s.handshake)),
        ("ssl.connection_error", g(&s.connection_error)),
        ("ssl.fail_verify_no_cert", g(&s.fail_verify_no_cert)),
        ("ssl.fail_verify_error", g(&s.fail_verify_error)),
        ("ssl.fail_verify_san", g(&s.fail_verify_san)),
        ("ssl.fail_verify_expired", g(&s.expired)),
        ("ssl.handshake_timeout", g(&s.handshake_timeout)),
        ("sigil.plaintext_to_strict", g(&s.plaintext_to_strict)),
        ("sigil.tls_to_plaintext", g(&s.tls_to_plaintext)),
        ("sigil.plaintext_accepted", g(&s.plaintext)),
        ("downstream_cx_overflow", g(&s.overflow)),
        ("downstream_cx_total", g(&s.cx_total)),
        ("downstream_cx_active", s.cx_active.load(Ordering::Relaxed)),
        ("downstream_cx_rx_bytes_total", g(&s.rx_bytes)),
        ("downstream_cx_tx_bytes_total", g(&s.tx_bytes)),
        ("rbac.allowed", g(&s.rbac_allowed)),
        ("rbac.denied", g(&s.rbac_denied)),
        ("rbac.shadow_allowed", g(&s.rbac_shadow_allowed)),
        ("rbac.shadow_denied", g(&s.rbac_shadow_denied)),
        ("downstream_rq_total", g(&s.rq_total)),
        ("downstream_rq_2xx", g(&s.rq_2xx)),
        ("downstream_rq_3xx", g(&s.rq_3xx)),
        ("downstream_rq_4xx", g(&s.rq_4xx)),
        ("downstream_rq_5xx", g(&s.rq_5xx)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_names_as_the_seed_document_greps_them() {
        let s = Stats::new(
            &[8080],
            &["billing-service.payments.svc.cluster.local:8080".into()],
        );
        s.inbound(8080).handshake_ok();
        s.inbound(8080)
            .handshake_failed(HandshakeFailure::NoCertificate);
        let t = s.envoy_text();
        assert!(
            t.contains("listener.0.0.0.0_8080.ssl.handshake: 1\n"),
            "{t}"
        );
        assert!(
            t.contains("listener.0.0.0.0_8080.ssl.fail_verify_no_cert: 1\n"),
            "{t}"
        );
        assert!(
            t.contains("listener.0.0.0.0_8080.ssl.connection_error: 1\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "cluster.outbound|billing-service.payments.svc.cluster.local:8080.ssl.handshake: 0"
            ),
            "{t}"
        );
        let p = s.prometheus_text();
        assert!(
            p.contains("sigil_proxy_ssl_handshake{listener=\"listener.0.0.0.0_8080\"} 1"),
            "{p}"
        );
    }

    #[test]
    fn active_connections_follow_guards() {
        let s = Stats::new(&[1], &[]);
        let l = s.inbound(1);
        let g = l.open();
        assert_eq!(l.cx_active.load(Ordering::Relaxed), 1);
        drop(g);
        assert_eq!(l.cx_active.load(Ordering::Relaxed), 0);
        assert_eq!(l.cx_total.load(Ordering::Relaxed), 1);
    }
}
