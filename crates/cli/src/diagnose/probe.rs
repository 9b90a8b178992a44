//! The IO of `sigil diagnose tls`: one TCP connection, one TLS handshake (or one plaintext
//! request), recorded as facts for [`super::classify`]. Nothing here decides what a failure
//! means.
//!
//! What is recorded:
//! - the TCP connect result (refused, timeout, other);
//! - the first bytes the server sent (a plaintext answer to a ClientHello is shown as is);
//! - the server's chain, and our verdict on it ([`check_server`]): X.509-SVID verification
//!   against the expected roots (`sigil_spiffe::verify_x509_svid`), or path validation alone
//!   for a leaf that is not an SVID; a chain we refuse aborts the handshake as a real mesh
//!   client would;
//! - alerts received during the handshake, and within a short wait after it (TLS 1.3 servers
//!   reject a client certificate only after the client has finished its side);
//! - version, cipher suite and ALPN of a completed handshake.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sigil_spiffe::{
    Bundle, SpiffeId, Usage, leaf_spiffe_id, verify_chain_to_anchors, verify_x509_svid,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::classify::{
    After, Alert, Connect, Handshake, Outcome, PeerCheck, Plain, TlsParams, looks_like_tls,
};
use super::explain::Problem;

/// What to probe and with what.
pub struct Probe {
    pub target: String,
    pub server_name: ServerName<'static>,
    pub alpn: Vec<String>,
    pub timeout: Duration,
    pub plaintext: bool,
    /// Chain (leaf first) and key to present.
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Roots to verify the server against; empty: record without verifying.
    pub roots: Vec<CertificateDer<'static>>,
    pub expect_id: Option<SpiffeId>,
}

/// What the probe saw.
pub struct Seen {
    pub outcome: Outcome,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub check: PeerCheck,
}

/// Our verdict on the server's chain.
pub fn check_server(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    now: UnixTime,
) -> PeerCheck {
    let Some((leaf, rest)) = chain.split_first() else {
        return PeerCheck::NotReached;
    };
    let svid = leaf_spiffe_id(leaf);
    if roots.is_empty() {
        return PeerCheck::Unverified {
            spiffe_id: svid.ok().map(|id| id.to_string()),
        };
    }
    match svid {
        Ok(id) => {
            let bundle =
                match Bundle::from_x509_authorities(id.trust_domain().clone(), roots.to_vec()) {
                    Ok(b) => b,
                    Err(_) => {
                        return PeerCheck::Failed(Problem::Chain(
                            sigil_spiffe::ChainError::NoAnchors,
                        ));
                    }
                };
            match verify_x509_svid(chain, &bundle, now, Usage::Server) {
                Ok(v) => PeerCheck::Verified {
                    spiffe_id: v.id().to_string(),
                },
                Err(e) => PeerCheck::Failed(Problem::Svid(e)),
            }
        }
        Err(rule) => match verify_chain_to_anchors(leaf, rest, roots, now, Usage::Server) {
            Ok(_) => PeerCheck::Failed(Problem::NotSvid(rule)),
            Err(e) => PeerCheck::Failed(Problem::Chain(e)),
        },
    }
}

/// Records the server's chain and our verdict; refuses what a mesh client would refuse.
#[derive(Debug)]
struct Recorder {
    roots: Vec<CertificateDer<'static>>,
    expect: Option<SpiffeId>,
    seen: Mutex<Option<(Vec<CertificateDer<'static>>, PeerCheck)>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let check = check_server(&chain, &self.roots, now);
        let id = match &check {
            PeerCheck::Verified { spiffe_id } => Some(spiffe_id.as_str()),
            PeerCheck::Unverified { spiffe_id } => spiffe_id.as_deref(),
            _ => None,
        };
        let refuse = match (&check, &self.expect) {
            (PeerCheck::Failed(_), _) => Some(CertificateError::ApplicationVerificationFailure),
            (_, Some(want)) if id != Some(want.as_str()) => {
                Some(CertificateError::ApplicationVerificationFailure)
            }
            _ => None,
        };
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((chain, check));
        match refuse {
            Some(e) => Err(rustls::Error::InvalidCertificate(e)),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A stream that keeps the first bytes the server sent.
struct Recording<S> {
    inner: S,
    first: Arc<Mutex<Vec<u8>>>,
}

const KEEP: usize = 64;

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            let room = KEEP.saturating_sub(first.len());
            first.extend_from_slice(&new[..new.len().min(room)]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn connect(target: &str, timeout: Duration) -> Result<TcpStream, Connect> {
    let deadline = tokio::time::Instant::now() + timeout;
    let addrs: Vec<_> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host(target)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(Connect::Failed(format!("cannot resolve {target}: {e}"))),
            Err(_) => return Err(Connect::Timeout),
        };
    let Some(addr) = addrs.first() else {
        return Err(Connect::Failed(format!("{target} resolves to no address")));
    };
    match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(Connect::Refused),
        Ok(Err(e)) => Err(Connect::Failed(e.to_string())),
        Err(_) => Err(Connect::Timeout),
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

fn alert_of(e: &io::Error) -> Option<Alert> {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => Some(Alert(u8::from(*a))),
        _ => None,
    }
}

/// Runs the probe.
pub async fn run(p: &Probe) -> Seen {
    let none = |outcome| Seen {
        outcome,
        server_chain: Vec::new(),
        check: PeerCheck::NotReached,
    };
    let tcp = match connect(&p.target, p.timeout).await {
        Ok(s) => s,
        Err(c) => return none(Outcome::NoConnection(c)),
    };
    if p.plaintext {
        return none(Outcome::Plaintext(plaintext(tcp, p).await));
    }
    match tls(tcp, p).await {
        Ok(seen) => seen,
        Err(e) => none(Outcome::Tls(Handshake::Error(e))),
    }
}

async fn plaintext(mut tcp: TcpStream, p: &Probe) -> Plain {
    let host = p
        .target
        .rsplit_once(':')
        .map_or(p.target.as_str(), |(h, _)| h);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sigil-diagnose\r\nConnection: close\r\n\r\n"
    );
    let io_end = |e: io::Error| match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Plain::Reset,
        io::ErrorKind::UnexpectedEof => Plain::Closed,
        _ => Plain::Error(e.to_string()),
    };
    if let Err(e) = tcp.write_all(req.as_bytes()).await {
        return io_end(e);
    }
    let mut buf = vec![0u8; 512];
    match tokio::time::timeout(p.timeout, tcp.read(&mut buf)).await {
        Err(_) => Plain::Timeout,
        Ok(Ok(0)) => Plain::Closed,
        Ok(Ok(n)) => Plain::Answered(buf[..n].to_vec()),
        Ok(Err(e)) => io_end(e),
    }
}

async fn tls(tcp: TcpStream, p: &Probe) -> Result<Seen, String> {
    let provider = sigil_tls::provider();
    let recorder = Arc::new(Recorder {
        roots: p.roots.clone(),
        expect: p.expect_id.clone(),
        seen: Mutex::new(None),
        algs: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone());
    let mut cfg = match &p.client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("the client certificate or key is unusable: {e}"))?,
    };
    cfg.alpn_protocols = p.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let first = Arc::new(Mutex::new(Vec::new()));
    let io = Recording {
        inner: tcp,
        first: first.clone(),
    };
    let started = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let result =
        tokio::time::timeout(p.timeout, connector.connect(p.server_name.clone(), io)).await;
    let (server_chain, check) = recorder
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or((Vec::new(), PeerCheck::NotReached));
    let first_bytes = first.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let not_tls = first_bytes.first().is_some_and(|b| !looks_like_tls(*b));
    let outcome = match result {
        _ if not_tls => Handshake::NotTls(first_bytes),
        Err(_) => Handshake::Timeout,
        Ok(Err(e)) => match (alert_of(&e), rustls_error(&e)) {
            (Some(a), _) => Handshake::Alert(a),
            (None, Some(rustls::Error::InvalidCertificate(_)))
                if check != PeerCheck::NotReached =>
            {
                Handshake::RejectedServer
            }
            _ => match e.kind() {
                io::ErrorKind::UnexpectedEof => Handshake::Closed,
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Handshake::Reset,
                _ => Handshake::Error(e.to_string()),
            },
        },
        Ok(Ok(mut stream)) => {
            let conn = stream.get_ref().1;
            let params = TlsParams {
                version: conn.protocol_version().map_or("unknown".into(), |v| {
                    format!("{v:?}").replace("TLSv1_", "TLSv1.")
                }),
                cipher: conn
                    .negotiated_cipher_suite()
                    .map_or("unknown".into(), |c| format!("{:?}", c.suite())),
                alpn: conn
                    .alpn_protocol()
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            };
            // A TLS 1.3 server judges our certificate after we finished: wait briefly for its
            // verdict (an alert or a close), longer on slow paths.
            let settle = (started.elapsed() * 3)
                .max(Duration::from_millis(300))
                .min(p.timeout);
            let mut buf = [0u8; 1];
            let after = match tokio::time::timeout(settle, stream.read(&mut buf)).await {
                Err(_) => After::Quiet,
                Ok(Ok(0)) => After::Closed,
                Ok(Ok(_)) => After::Data,
                Ok(Err(e)) => match (alert_of(&e), e.kind()) {
                    (Some(a), _) => After::Alert(a),
                    (None, io::ErrorKind::UnexpectedEof) => After::Closed,
                    (None, io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
                        After::Reset
                    }
                    _ => After::Error(e.to_string()),
                },
            };
            let _ = stream.shutdown().await;
            Handshake::Completed { params, after }
        }
    };
    Ok(Seen {
        outcome: Outcome::Tls(outcome),
        server_chain,
        check,
    })
}
