//! From what the probe saw ([`Observation`]) to a [`Finding`]: pure, so every outcome is
//! unit-tested without sockets. The probe (`probe.rs`) only records facts.

use serde::Serialize;

use super::certinfo::CertInfo;
use super::explain::{self, CertContext, Problem};
use super::finding::Finding;

/// A TLS alert, by its RFC 8446 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert(pub u8);

impl Alert {
    pub const HANDSHAKE_FAILURE: Alert = Alert(40);
    pub const BAD_CERTIFICATE: Alert = Alert(42);
    pub const UNSUPPORTED_CERTIFICATE: Alert = Alert(43);
    pub const CERTIFICATE_REVOKED: Alert = Alert(44);
    pub const CERTIFICATE_EXPIRED: Alert = Alert(45);
    pub const CERTIFICATE_UNKNOWN: Alert = Alert(46);
    pub const UNKNOWN_CA: Alert = Alert(48);
    pub const ACCESS_DENIED: Alert = Alert(49);
    pub const DECRYPT_ERROR: Alert = Alert(51);
    pub const PROTOCOL_VERSION: Alert = Alert(70);
    pub const INSUFFICIENT_SECURITY: Alert = Alert(71);
    pub const CERTIFICATE_REQUIRED: Alert = Alert(116);
    pub const NO_APPLICATION_PROTOCOL: Alert = Alert(120);

    /// The name the RFCs (and OpenSSL's messages) use.
    pub fn name(self) -> String {
        match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            22 => "record_overflow",
            40 => "handshake_failure",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            109 => "missing_extension",
            110 => "unsupported_extension",
            112 => "unrecognized_name",
            116 => "certificate_required",
            120 => "no_application_protocol",
            n => return format!("alert {n}"),
        }
        .to_owned()
    }

    /// The server says it did not accept our client certificate.
    fn rejects_client_cert(self) -> bool {
        [
            Alert::BAD_CERTIFICATE,
            Alert::UNSUPPORTED_CERTIFICATE,
            Alert::CERTIFICATE_REVOKED,
            Alert::CERTIFICATE_EXPIRED,
            Alert::CERTIFICATE_UNKNOWN,
            Alert::UNKNOWN_CA,
            Alert::ACCESS_DENIED,
            Alert::DECRYPT_ERROR,
        ]
        .contains(&self)
    }
}

/// What was expected of the server and what we presented.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// Where the trusted roots came from; `None`: the server's chain is not verified.
    pub trust_source: Option<String>,
    pub roots: Vec<CertInfo>,
    pub trust_domain: Option<String>,
    pub expect_id: Option<String>,
    pub alpn: Vec<String>,
    /// Our client certificate (leaf), and where it came from (`--cert F`, `--as ID`).
    pub client: Option<(CertInfo, String)>,
}

/// Our check of the server's chain.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerCheck {
    /// The handshake never got to the server's certificate.
    NotReached,
    /// No roots were given: the chain was recorded but not verified.
    Unverified {
        spiffe_id: Option<String>,
    },
    Verified {
        spiffe_id: String,
    },
    Failed(Problem),
}

/// What happened after a completed handshake, within a short wait for a late alert.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// Nothing arrived: the server waits for us to speak (a healthy connection).
    Quiet,
    /// The server sent application data.
    Data,
    Closed,
    Reset,
    Alert(Alert),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsParams {
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
}

/// How the TLS exchange ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Handshake {
    Completed {
        params: TlsParams,
        after: After,
    },
    /// The server sent an alert during the handshake.
    Alert(Alert),
    /// We refused the server's certificate (the reason is in [`PeerCheck`]).
    RejectedServer,
    /// The answer is not a TLS record; the first bytes.
    NotTls(Vec<u8>),
    Closed,
    Reset,
    Timeout,
    Error(String),
}

/// How a plaintext request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Answered(Vec<u8>),
    Closed,
    Reset,
    Timeout,
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connect {
    Refused,
    Timeout,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    NoConnection(Connect),
    Tls(Handshake),
    Plaintext(Plain),
}

/// Everything the probe saw.
#[derive(Debug, Clone)]
pub struct Observation {
    pub target: String,
    pub now: i64,
    pub timeout: std::time::Duration,
    pub expect: Expectation,
    pub outcome: Outcome,
    pub server_chain: Vec<CertInfo>,
    pub check: PeerCheck,
}

/// Printable first bytes: text as text, the rest as `\xNN`.
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(64) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > 64 {
        s.push('…');
    }
    format!("\"{s}\"")
}

/// TLS record content types: change_cipher_spec, alert, handshake, application_data.
pub fn looks_like_tls(first: u8) -> bool {
    (20..=23).contains(&first)
}

fn mesh_fixes(target: &str) -> Vec<String> {
    let port = target.rsplit(':').next().unwrap_or("<port>");
    vec![
        "# Either give the client a mesh identity: run it beside a Sigil proxy (the sidecar),"
            .into(),
        "# or probe with a short-lived SVID minted by the server:".into(),
        format!("sigil diagnose tls {target} --as <namespace>/<serviceaccount>"),
        format!(
            "# Or, only for ports such as health checks, exempt workload port {port} from mTLS:"
        ),
        "sigil apply -f - <<'EOF'".into(),
        "apiVersion: security.istio.io/v1beta1".into(),
        "kind: PeerAuthentication".into(),
        "metadata: {name: <name>, namespace: <namespace>}".into(),
        "spec:".into(),
        "  selector: {matchLabels: {app: <app>}}".into(),
        "  mtls: {mode: STRICT}".into(),
        "  portLevelMtls:".into(),
        format!("    {port}: {{mode: DISABLE}}"),
        "EOF".into(),
        "# See which PeerAuthentication makes the port STRICT:".into(),
        "sigil get peerauthentication -A -o yaml".into(),
    ]
}

fn client_text(e: &Expectation) -> String {
    match &e.client {
        None => "none (no --cert/--key or --as given)".into(),
        Some((c, src)) => format!(
            "{} from {src}, issued by {}",
            c.spiffe_id.as_deref().unwrap_or(&c.subject),
            c.issuer
        ),
    }
}

/// Diagnoses one observation.
pub fn classify(o: &Observation) -> Finding {
    let t = o.target.as_str();
    match &o.outcome {
        Outcome::NoConnection(c) => no_connection(t, c, o.timeout),
        Outcome::Plaintext(p) => plaintext(t, p, o.timeout),
        Outcome::Tls(h) => tls(o, h),
    }
}

fn no_connection(t: &str, c: &Connect, timeout: std::time::Duration) -> Finding {
    match c {
        Connect::Refused => Finding::new(
            "connection-refused",
            false,
            format!("connection refused: nothing listens on {t}"),
        )
        .explain("The host answered, but no process accepts connections on that port.")
        .fixes([
            "# Is the server (or its proxy) running, and on this port?".to_owned(),
            "ss -ltnp".to_owned(),
            "sigil get serviceentry -A -o wide".to_owned(),
        ]),
        Connect::Timeout => Finding::new(
            "connect-timeout",
            false,
            format!("no TCP connection to {t} within {timeout:?}"),
        )
        .explain(
            "Nothing answered the TCP handshake: the host is down or unreachable, or a firewall \
             drops the packets.",
        )
        .fix("# Check the address, routes and firewalls; then retry with a longer --timeout."),
        Connect::Failed(e) => Finding::new(
            "connect-failed",
            false,
            format!("cannot connect to {t}: {e}"),
        )
        .fix("# Check the host name (DNS) and the network path."),
    }
}

fn plaintext(t: &str, p: &Plain, timeout: std::time::Duration) -> Finding {
    match p {
        Plain::Answered(b) if b.first().copied().is_some_and(looks_like_tls) => Finding::new(
            "plaintext-to-tls",
            false,
            format!(
                "{t} speaks TLS: it answered our plaintext request with a TLS record \
                 (a client expecting plaintext reports an error such as SSL_ERROR_RX_RECORD_TOO_LONG \
                 on the other side, or garbage)"
            ),
        )
        .evidence("first bytes received", show_bytes(b))
        .fixes([
            "# Talk TLS to this port, with a mesh identity:".to_owned(),
            format!("sigil diagnose tls {t} --as <namespace>/<serviceaccount>"),
            "# If a DestinationRule sends plaintext here, check its tls.mode (ISTIO_MUTUAL for mesh ports):"
                .to_owned(),
            "sigil get destinationrule -A -o yaml".to_owned(),
        ]),
        Plain::Answered(b) => {
            let line = b
                .split(|c| *c == b'\n')
                .next()
                .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
                .unwrap_or_default();
            Finding::new(
                "ok",
                true,
                format!("{t} accepts plaintext; it answered {:?}", line),
            )
            .evidence("first bytes received", show_bytes(b))
        }
        Plain::Closed | Plain::Reset => {
            let how = if *p == Plain::Reset {
                "reset"
            } else {
                "closed"
            };
            Finding::new(
                "plaintext-rejected",
                false,
                format!(
                    "upstream connect error, reset reason: connection termination: {t} {how} the \
                     connection without answering our plaintext request: the port requires mTLS \
                     (STRICT), and a client without a sidecar is not let in"
                ),
            )
            .explain(
                "A STRICT PeerAuthentication makes the proxy accept only TLS from mesh clients \
                 with a valid SVID; plaintext is dropped before it reaches the application.",
            )
            .evidence("answer", format!("none; the server {how} the connection"))
            .fixes(mesh_fixes(t))
        }
        Plain::Timeout => Finding::new(
            "no-answer",
            false,
            format!("{t} accepted the TCP connection but did not answer our request within {timeout:?}"),
        )
        .explain("The port may speak another protocol, or the application is stuck.")
        .fix(format!("sigil diagnose tls {t}")),
        Plain::Error(e) => Finding::new("connect-failed", false, format!("{t}: {e}")),
    }
}

fn tls(o: &Observation, h: &Handshake) -> Finding {
    let t = o.target.as_str();
    let e = &o.expect;
    // Our own verdict on the server's chain first: the handshake aborts because of it.
    if let PeerCheck::Failed(p) = &o.check {
        let ctx = CertContext {
            what: "the server's certificate chain",
            chain: &o.server_chain,
            roots: &e.roots,
            trust_source: e.trust_source.as_deref().unwrap_or("none"),
            expected_td: e.trust_domain.as_deref(),
            target: Some(t),
        };
        return explain::explain(&ctx, p);
    }
    let presented_id = match &o.check {
        PeerCheck::Verified { spiffe_id } => Some(spiffe_id.clone()),
        PeerCheck::Unverified { spiffe_id } => spiffe_id.clone(),
        _ => None,
    };
    if let (Some(want), true) = (&e.expect_id, o.check != PeerCheck::NotReached)
        && presented_id.as_deref() != Some(want.as_str())
    {
        let got = presented_id.as_deref().unwrap_or("no SPIFFE ID");
        return Finding::new(
            "spiffe-id-mismatch",
            false,
            format!("SPIFFE ID mismatch: {t} presented {got}, but you expected {want}"),
        )
        .explain(
            "The certificate is trusted, but it names another workload: the address routes to \
             the wrong service, or the expected identity (secure naming) is out of date.",
        )
        .evidence("expected SPIFFE ID", want.clone())
        .evidence("presented SPIFFE ID", got)
        .evidence("presented chain", chain_lines(&o.server_chain))
        .fixes([
            "# Which workload runs there, and which identity does the DestinationRule / ServiceEntry expect?"
                .to_owned(),
            "sigil get destinationrule -A -o yaml".to_owned(),
            "sigil get serviceentry -A -o yaml".to_owned(),
            "sigil entry show".to_owned(),
        ]);
    }
    match h {
        Handshake::Completed { params, after } => completed(o, params, after),
        Handshake::Alert(a) => alert(o, *a, false),
        Handshake::RejectedServer => Finding::new(
            "handshake-failed",
            false,
            format!("we refused the certificate of {t}"),
        ),
        Handshake::NotTls(b) => not_tls(t, b),
        Handshake::Closed | Handshake::Reset => Finding::new(
            "connection-terminated",
            false,
            format!(
                "connection termination: {t} {} the connection during the TLS handshake, \
                 without a TLS alert",
                if *h == Handshake::Reset { "reset" } else { "closed" }
            ),
        )
        .explain(
            "The server dropped our ClientHello: it may speak plaintext and give up on \
             unreadable input, have no certificate to serve yet (a proxy without its SVID), \
             or accept only other TLS versions.",
        )
        .evidence("client certificate", client_text(e))
        .fixes([
            "# Does it speak plaintext?".to_owned(),
            format!("sigil diagnose tls {t} --plaintext"),
            "# Is its proxy ready (has an SVID and configuration)?".to_owned(),
            "curl -s http://127.0.0.1:15000/ready".to_owned(),
        ]),
        Handshake::Timeout => Finding::new(
            "no-tls-answer",
            false,
            format!(
                "{t} accepted the TCP connection but did not answer the TLS ClientHello within {:?}",
                o.timeout
            ),
        )
        .explain(
            "A plaintext server that waits for a request line (or a server-first protocol) does \
             not answer a ClientHello; an overloaded server neither.",
        )
        .fix(format!("sigil diagnose tls {t} --plaintext")),
        Handshake::Error(err) => Finding::new(
            "handshake-failed",
            false,
            format!("TLS handshake with {t} failed: {err}"),
        )
        .evidence("client certificate", client_text(e)),
    }
}

fn chain_lines(chain: &[CertInfo]) -> String {
    chain
        .iter()
        .map(|c| {
            format!(
                "#{} {}, issued by {}",
                c.index,
                c.spiffe_id.as_deref().unwrap_or(&c.subject),
                c.issuer
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn not_tls(t: &str, b: &[u8]) -> Finding {
    let http = b.starts_with(b"HTTP/");
    Finding::new(
        "not-tls",
        false,
        format!(
            "SSL_ERROR_RX_RECORD_TOO_LONG: you spoke TLS to a plaintext port: {t} answered with {}",
            if http {
                "plaintext HTTP"
            } else {
                "bytes that are not a TLS record"
            }
        ),
    )
    .explain(
        "The server expects plain HTTP (or another plaintext protocol) while the client sent \
         TLS; TLS clients read the plaintext reply as a huge TLS record. The reverse (plaintext \
         to a TLS port) fails the same way on the server's side.",
    )
    .evidence("first bytes received", show_bytes(b))
    .fixes([
        "# If the port should be mesh mTLS: is the server's proxy in front of it, and is its mode not DISABLE?"
            .to_owned(),
        "sigil get peerauthentication -A -o yaml".to_owned(),
        "# If the port is plaintext on purpose: the client must not originate TLS; check the DestinationRule TLS mode (DISABLE for plaintext)"
            .to_owned(),
        "sigil get destinationrule -A -o yaml".to_owned(),
        format!("sigil diagnose tls {t} --plaintext"),
    ])
}

fn alert(o: &Observation, a: Alert, after_handshake: bool) -> Finding {
    let t = o.target.as_str();
    let e = &o.expect;
    let when = if after_handshake {
        "right after the handshake"
    } else {
        "during the handshake"
    };
    let sent_cert = e.client.is_some();
    if a == Alert::CERTIFICATE_REQUIRED || (!sent_cert && a.rejects_client_cert()) {
        return Finding::new(
            "client-cert-required",
            false,
            format!(
                "connection termination: STRICT mTLS rejected a client without a sidecar: {t} \
                 requires a client certificate and none was sent (TLS alert {} {when})",
                a.name()
            ),
        )
        .explain(
            "Mesh ports in STRICT mode accept only clients that present an X.509-SVID, which \
             the client's proxy (sidecar) does for it. A plain curl or a pod without a proxy is \
             cut off; it sees \"upstream connect error … connection termination\".",
        )
        .evidence("client certificate", client_text(e))
        .evidence("alert received", a.name())
        .fixes(mesh_fixes(t));
    }
    if a == Alert::NO_APPLICATION_PROTOCOL {
        return Finding::new(
            "alpn-mismatch",
            false,
            format!(
                "ALPN mismatch: {t} supports none of the application protocols offered ({}) \
                 (TLS alert no_application_protocol)",
                if e.alpn.is_empty() {
                    "none".to_owned()
                } else {
                    e.alpn.join(", ")
                }
            ),
        )
        .explain(
            "Client and server must agree on the protocol inside TLS (h2, http/1.1, or the \
             mesh's own markers such as sigil-mtls / istio). The server refused every one.",
        )
        .evidence("offered ALPN", e.alpn.join(", "))
        .fixes([
            "# Offer what the server speaks (mesh ports accept h2, http/1.1, sigil-mtls, istio):".to_owned(),
            format!("sigil diagnose tls {t} --alpn h2,http/1.1"),
            "# For mesh traffic, check the port protocol in the ServiceEntry and the DestinationRule:".to_owned(),
            "sigil get serviceentry,destinationrule -A -o yaml".to_owned(),
        ]);
    }
    if a.rejects_client_cert() {
        let (summary, why) = if a == Alert::CERTIFICATE_EXPIRED {
            (
                format!(
                    "CERTIFICATE_VERIFY_FAILED: {t} rejected your client certificate as expired \
                     (TLS alert certificate_expired {when})"
                ),
                "The server checks the client certificate's validity with its own clock.",
            )
        } else {
            (
                format!(
                    "CERTIFICATE_VERIFY_FAILED: the server does not trust the CA that signed your \
                     client certificate (TLS alert {} {when})",
                    a.name()
                ),
                "The CA that signed the client certificate is not in the server's trust bundle \
                 (\"ssl3_read_bytes:certificate verify failed\" in OpenSSL clients).",
            )
        };
        let mut f = Finding::new("client-cert-rejected", false, summary)
            .explain(why)
            .evidence("client certificate", client_text(e))
            .evidence("alert received", a.name());
        if let Some((c, _)) = &e.client {
            f = f.evidence(
                "client certificate validity",
                super::certinfo::validity_phrase(c.not_before, c.not_after, o.now),
            );
        }
        let cert_file = match &e.client {
            Some((_, src)) => src
                .strip_prefix("--cert ")
                .unwrap_or("client.crt")
                .to_owned(),
            None => "client.crt".to_owned(),
        };
        return f.fixes([
            "# Both sides must use the same root. Get the server's trust bundle:".to_owned(),
            "sigil bundle show --format pem > ca.pem".to_owned(),
            format!("# Verify the client certificate was signed by that root (like `openssl verify -CAfile ca.pem {cert_file}`):"),
            format!("sigil x509 verify --bundle ca.pem {cert_file}"),
            "# Then issue the client certificate from that trust domain:".to_owned(),
            "sigil x509 mint --spiffe-id spiffe://<trust-domain>/ns/<ns>/sa/<sa> --out-dir ./client".to_owned(),
        ]);
    }
    let detail = match a {
        Alert::PROTOCOL_VERSION | Alert::INSUFFICIENT_SECURITY | Alert::HANDSHAKE_FAILURE => {
            "client and server share no TLS version, cipher suite or signature scheme"
        }
        _ => "the server aborted the handshake",
    };
    Finding::new(
        "handshake-failed",
        false,
        format!(
            "TLS handshake with {t} failed: {detail} (TLS alert {} {when})",
            a.name()
        ),
    )
    .evidence("alert received", a.name())
    .evidence("client certificate", client_text(e))
}

fn completed(o: &Observation, params: &TlsParams, after: &After) -> Finding {
    let t = o.target.as_str();
    let e = &o.expect;
    match after {
        After::Alert(a) => return alert(o, *a, true),
        After::Closed | After::Reset if e.client.is_none() => {
            return Finding::new(
                "client-cert-required",
                false,
                format!(
                    "connection termination: STRICT mTLS rejected a client without a sidecar: {t} \
                     closed the connection right after the handshake, and no client certificate \
                     was sent"
                ),
            )
            .explain(
                "A server that requires client certificates and speaks TLS 1.2 (or does not \
                 send the alert) just closes; the client sees \"connection termination\".",
            )
            .evidence("client certificate", client_text(e))
            .fixes(mesh_fixes(t));
        }
        After::Closed | After::Reset => {
            return Finding::new(
                "closed-after-handshake",
                false,
                format!(
                    "connection termination: {t} completed the handshake, then closed the \
                     connection without a TLS alert"
                ),
            )
            .explain(
                "Either the server rejected the client certificate without saying so, or an \
                 AuthorizationPolicy denies this identity on a TCP port (the proxy closes \
                 denied TCP connections).",
            )
            .evidence("client certificate", client_text(e))
            .fixes([
                "# Which policies apply to the server's workload?".to_owned(),
                "sigil get authorizationpolicy -A -o yaml".to_owned(),
                "# Is the client certificate signed by the server's root?".to_owned(),
                "sigil bundle show --format pem > ca.pem".to_owned(),
                "sigil x509 verify --bundle ca.pem client.crt".to_owned(),
            ]);
        }
        After::Error(err) => {
            return Finding::new(
                "handshake-failed",
                false,
                format!("the TLS connection to {t} failed right after the handshake: {err}"),
            );
        }
        After::Quiet | After::Data => {}
    }
    let mut f = match &o.check {
        PeerCheck::Verified { spiffe_id } => Finding::new(
            "ok",
            true,
            format!(
                "mTLS to {t} works: the server is {spiffe_id}, verified against {}",
                e.trust_source.as_deref().unwrap_or("the given roots")
            ),
        ),
        PeerCheck::Unverified { spiffe_id } => Finding::new(
            "ok",
            true,
            format!(
                "the TLS handshake with {t} works, but the server's certificate was NOT verified \
                 (give --ca or --as); it presents {}",
                spiffe_id.as_deref().unwrap_or("no SPIFFE ID")
            ),
        ),
        _ => Finding::new("ok", true, format!("the TLS handshake with {t} works")),
    };
    if let PeerCheck::Verified { spiffe_id }
    | PeerCheck::Unverified {
        spiffe_id: Some(spiffe_id),
    } = &o.check
    {
        f = f.evidence("peer SPIFFE ID", spiffe_id.clone());
    }
    f = f
        .evidence("peer chain", chain_lines(&o.server_chain))
        .evidence("TLS version", params.version.clone())
        .evidence("cipher suite", params.cipher.clone())
        .evidence(
            "ALPN",
            params
                .alpn
                .clone()
                .unwrap_or_else(|| "none negotiated".into()),
        )
        .evidence("client certificate", client_text(e));
    if let Some(leaf) = o.server_chain.first() {
        f = f.evidence(
            "peer validity",
            super::certinfo::validity_phrase(leaf.not_before, leaf.not_after, o.now),
        );
    }
    f
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
