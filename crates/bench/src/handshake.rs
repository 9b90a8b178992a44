//! New mTLS connections as fast as the server takes them: N tasks, each in a loop of connect,
//! full TLS 1.3 handshake with a client certificate (resumption disabled), one
//! `GET PATH HTTP/1.0` read to the end of the response, close.
//!
//! The client checks the server's chain against `--ca` but not its name: the servers measured
//! (peers and Sigil) present SPIFFE certificates whose identity is a URI SAN, and the cost
//! measured is the server's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

/// What to connect to and with which identity.
pub struct Options {
    pub connect: SocketAddr,
    /// Client certificate chain (leaf first).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Roots the server's chain must lead to.
    pub ca: PathBuf,
    pub secs: f64,
    pub conns: usize,
    pub path: String,
}

/// Completed connections (handshake + a 200 answer), failures, wall time.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: f64,
    /// The key-exchange group of the last handshake.
    pub group: String,
    pub first_error: Option<String>,
}

/// Chain verification of rustls' WebPKI verifier, without the name check.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("--{what} {}", path.display()))
}

/// The client configuration: TLS 1.3 only, the client chain, no session resumption.
fn client_config(o: &Options) -> anyhow::Result<ClientConfig> {
    let certs = rustls_pemfile::certs(&mut read(&o.cert, "cert")?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--cert {}: not PEM certificates", o.cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("--cert {}: no certificate in it", o.cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut read(&o.key, "key")?.as_slice())
        .with_context(|| format!("--key {}: not a PEM private key", o.key.display()))?
        .ok_or_else(|| anyhow!("--key {}: no private key in it", o.key.display()))?;
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut read(&o.ca, "ca")?.as_slice()) {
        let c = c.with_context(|| format!("--ca {}: not PEM certificates", o.ca.display()))?;
        roots
            .add(c)
            .with_context(|| format!("--ca {}: unusable root", o.ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("--ca {}", o.ca.display()))?;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        .with_client_auth_cert(certs, key)
        .context("--cert/--key do not form a usable client identity")?;
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

/// One connection: handshake, request, response to EOF. The key-exchange group on success.
async fn once(
    tls: &TlsConnector,
    o: &Options,
    request: &[u8],
) -> anyhow::Result<Option<&'static str>> {
    let tcp = TcpStream::connect(o.connect).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("billing-service")?;
    let mut s = tls.connect(name, tcp).await?;
    let group = s
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .and_then(|g| g.name().as_str());
    s.write_all(request).await?;
    let mut buf = Vec::with_capacity(1024);
    match s.read_to_end(&mut buf).await {
        Ok(_) => {}
        // Servers that close without close_notify: the response is what counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    let head = buf.get(..12).unwrap_or(&buf);
    if head.starts_with(b"HTTP/1.") && head.ends_with(b"200") {
        Ok(group)
    } else {
        Err(anyhow!(
            "unexpected response: {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(80)])
        ))
    }
}

/// Runs the load for `o.secs` seconds.
pub async fn run(o: &Options) -> anyhow::Result<Outcome> {
    let tls = TlsConnector::from(Arc::new(client_config(o)?));
    let request = format!("GET {} HTTP/1.0\r\nHost: billing-service\r\n\r\n", o.path).into_bytes();
    let ok = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let group = Mutex::new(String::from("none"));
    let first_error = Mutex::new(None::<String>);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.secs);
    let worker = || async {
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(10), once(&tls, o, &request)).await {
                Ok(Ok(g)) => {
                    if ok.fetch_add(1, Ordering::Relaxed) == 0 {
                        *group.lock().await = g.unwrap_or("unknown").to_owned();
                    }
                }
                Ok(Err(e)) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    let mut f = first_error.lock().await;
                    if f.is_none() {
                        *f = Some(format!("{e:#}"));
                    }
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    let tasks: Vec<_> = (0..o.conns).map(|_| worker()).collect();
    futures::future::join_all(tasks).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Outcome {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        group: group.into_inner(),
        first_error: first_error.into_inner(),
    })
}
