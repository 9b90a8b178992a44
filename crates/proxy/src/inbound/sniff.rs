//! Looking at the first bytes of a connection to decide how to treat it.
//!
//! - [`sniff_tls`] peeks (`MSG_PEEK`, nothing consumed) until it knows whether the bytes are a
//!   TLS ClientHello and, when asked, which ALPN values it offers. A ClientHello may be split
//!   across TCP segments and across TLS records; up to [`MAX_HELLO`] bytes are looked at.
//! - [`detect_app`] reads (and replays through [`Rewind`]) the first bytes of a plaintext or
//!   decrypted stream to tell HTTP/1, the HTTP/2 prior-knowledge preface and anything else apart.
//!
//! Both are bounded by a deadline; nothing here panics on network input.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The most bytes looked at for a ClientHello (a post-quantum key share makes them ~1.8 KiB;
/// 16 KiB is a full TLS record).
pub const MAX_HELLO: usize = 16 * 1024 + 5;

/// What the ClientHello offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// ALPN protocol names, in the client's order.
    pub alpn: Vec<Vec<u8>>,
    /// Server name indication.
    pub sni: Option<String>,
}

impl ClientHelloInfo {
    /// Whether one of the ALPN values marks a mesh peer.
    pub fn offers_mesh(&self) -> bool {
        self.alpn.iter().any(|p| crate::alpn::is_mesh(p))
    }
}

/// The outcome of [`sniff_tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS ClientHello (its details only when they were asked for and parseable).
    Tls(ClientHelloInfo),
    /// Not TLS.
    Plaintext,
    /// The peer closed (or reset) before sending a decisive byte.
    Closed,
    /// Nothing decisive arrived before the deadline; `got` bytes were seen.
    Timeout { got: usize },
}

/// Result of parsing a (possibly partial) prefix.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    NeedMore,
    NotTls,
    Tls(ClientHelloInfo),
}

/// Peeks at `stream` until the first bytes tell TLS from plaintext (and, with `want_hello`,
/// until the ClientHello is complete), or until `deadline`.
pub async fn sniff_tls(stream: &TcpStream, deadline: Instant, want_hello: bool) -> Sniffed {
    let mut buf = vec![0u8; 2048];
    let mut seen = 0usize;
    let mut backoff = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Sniffed::Timeout { got: seen },
            Ok(Err(_)) | Ok(Ok(0)) => return Sniffed::Closed,
            Ok(Ok(n)) => n,
        };
        match parse(&buf[..n], want_hello) {
            Parse::NotTls => return Sniffed::Plaintext,
            Parse::Tls(info) => return Sniffed::Tls(info),
            Parse::NeedMore if n == buf.len() => {
                if buf.len() >= MAX_HELLO {
                    // A hello this large is not one we can inspect: TLS without known ALPN.
                    return Sniffed::Tls(ClientHelloInfo::default());
                }
                buf.resize((buf.len() * 2).min(MAX_HELLO), 0);
            }
            Parse::NeedMore => {
                // `peek` returns at once while any byte is buffered, so wait a little for
                // the rest of a split hello instead of spinning.
                if n == seen {
                    if tokio::time::timeout_at(deadline, tokio::time::sleep(backoff))
                        .await
                        .is_err()
                    {
                        return Sniffed::Timeout { got: seen };
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                } else {
                    backoff = Duration::from_millis(1);
                }
            }
        }
        seen = n;
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(*b.get(i)?) << 8 | usize::from(*b.get(i + 1)?))
}

/// Parses the TLS records at the start of `buf`.
fn parse(buf: &[u8], want_hello: bool) -> Parse {
    // Record header: type 22 (handshake), version 3.x.
    match buf {
        [] => return Parse::NeedMore,
        [t, ..] if *t != 0x16 => return Parse::NotTls,
        [_] => return Parse::NeedMore,
        [_, major, ..] if *major != 0x03 => return Parse::NotTls,
        [_, _] => return Parse::NeedMore,
        [_, _, minor, ..] if *minor > 0x04 => return Parse::NotTls,
        _ => {}
    }
    if !want_hello {
        return Parse::Tls(ClientHelloInfo::default());
    }
    // Reassemble the handshake bytes across records.
    let mut hs = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else {
            return Parse::NeedMore;
        };
        if header[0] != 0x16 {
            // A non-handshake record before the hello completed: not a hello we understand.
            return Parse::Tls(ClientHelloInfo::default());
        }
        let len = usize::from(header[3]) << 8 | usize::from(header[4]);
        let Some(body) = buf.get(at + 5..at + 5 + len) else {
            // Take the partial fragment: the hello may already be complete in it.
            hs.extend_from_slice(buf.get(at + 5..).unwrap_or_default());
            return match hello(&hs) {
                Some(p) => p,
                None => Parse::NeedMore,
            };
        };
        hs.extend_from_slice(body);
        at += 5 + len;
        if let Some(p) = hello(&hs) {
            return p;
        }
    }
}

/// Parses a complete ClientHello handshake message from `hs`; `None` when incomplete.
fn hello(hs: &[u8]) -> Option<Parse> {
    let (&typ, rest) = hs.split_first()?;
    if typ != 1 {
        return Some(Parse::Tls(ClientHelloInfo::default()));
    }
    let len = usize::from(*rest.first()?) << 16 | u16_at(rest, 1)?;
    if len > MAX_HELLO {
        return Some(Parse::Tls(ClientHelloInfo::default()));
    }
    let body = rest.get(3..3 + len)?;
    Some(Parse::Tls(hello_body(body).unwrap_or_default()))
}

fn hello_body(b: &[u8]) -> Option<ClientHelloInfo> {
    // legacy_version (2), random (32)
    let mut i = 34;
    let sid = usize::from(*b.get(i)?);
    i += 1 + sid;
    let suites = u16_at(b, i)?;
    i += 2 + suites;
    let comp = usize::from(*b.get(i)?);
    i += 1 + comp;
    let mut info = ClientHelloInfo::default();
    let Some(ext_len) = u16_at(b, i) else {
        return Some(info);
    };
    i += 2;
    let exts = b.get(i..i + ext_len)?;
    let mut j = 0;
    while j + 4 <= exts.len() {
        let typ = u16_at(exts, j)?;
        let len = u16_at(exts, j + 2)?;
        let data = exts.get(j + 4..j + 4 + len)?;
        match typ {
            0 => info.sni = sni(data),
            16 => info.alpn = alpn(data)?,
            _ => {}
        }
        j += 4 + len;
    }
    Some(info)
}

fn sni(d: &[u8]) -> Option<String> {
    // server_name_list length (2), name_type (1), host_name length (2), name
    if *d.get(2)? != 0 {
        return None;
    }
    let len = u16_at(d, 3)?;
    let name = d.get(5..5 + len)?;
    std::str::from_utf8(name).ok().map(str::to_owned)
}

fn alpn(d: &[u8]) -> Option<Vec<Vec<u8>>> {
    let total = u16_at(d, 0)?;
    let list = d.get(2..2 + total)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let len = usize::from(list[i]);
        out.push(list.get(i + 1..i + 1 + len)?.to_vec());
        i += 1 + len;
    }
    Some(out)
}

/// What a plaintext (or decrypted) stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStart {
    /// An HTTP/1.x request line (`METHOD SP ...`).
    Http1,
    /// The HTTP/2 connection preface (prior knowledge).
    H2,
    /// Anything else.
    Other,
    /// Nothing arrived in time (or the peer closed at once).
    Nothing,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn classify(buf: &[u8]) -> Option<AppStart> {
    if !buf.is_empty() && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
        return (buf.len() >= H2_PREFACE.len()).then_some(AppStart::H2);
    }
    for (i, b) in buf.iter().enumerate() {
        match b {
            b'A'..=b'Z' | b'-' | b'_' if i < 20 => {}
            b' ' if i > 0 => return Some(AppStart::Http1),
            _ => return Some(AppStart::Other),
        }
    }
    None
}

/// Reads the start of `io` until it can be classified or `deadline` passes; the bytes read
/// are replayed by the returned [`Rewind`].
pub async fn detect_app<S: AsyncRead + Unpin>(
    mut io: S,
    deadline: Instant,
) -> (Rewind<S>, AppStart) {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    let start = loop {
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => break AppStart::Nothing,
            Err(_) if buf.is_empty() => break AppStart::Nothing,
            Err(_) => break AppStart::Other,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(s) = classify(&buf) {
            break s;
        }
    };
    (Rewind::new(buf, io), start)
}

/// A stream that first yields `prefix`, then reads from `inner`. Writes go to `inner`.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, b)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, offering `alpn`.
    fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut cfg = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from("billing.example").unwrap();
        let mut c = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_client_hello_with_its_alpn_and_sni() {
        let h = client_hello(&[b"sigil-mtls", b"h2"]);
        let Parse::Tls(info) = parse(&h, true) else {
            panic!("not parsed")
        };
        assert_eq!(info.alpn, vec![b"sigil-mtls".to_vec(), b"h2".to_vec()]);
        assert_eq!(info.sni.as_deref(), Some("billing.example"));
        assert!(info.offers_mesh());
        // Every strict prefix needs more.
        for cut in 1..h.len() {
            assert_eq!(parse(&h[..cut], true), Parse::NeedMore, "cut at {cut}");
        }
    }

    #[test]
    fn a_hello_split_across_records() {
        let h = client_hello(&[b"istio-h2"]);
        let body = &h[5..];
        let (a, b) = body.split_at(40);
        let mut split = Vec::new();
        for part in [a, b] {
            split.extend_from_slice(&[0x16, 0x03, 0x01]);
            split.extend_from_slice(&(part.len() as u16).to_be_bytes());
            split.extend_from_slice(part);
        }
        let Parse::Tls(info) = parse(&split, true) else {
            panic!("not parsed")
        };
        assert!(info.offers_mesh());
    }

    #[test]
    fn plaintext_and_garbage() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", true), Parse::NotTls);
        assert_eq!(parse(&[0x16, 0x01], true), Parse::NotTls);
        assert_eq!(parse(&[0x16, 0x03, 0x09], true), Parse::NotTls);
        assert_eq!(
            parse(&[0x16, 0x03, 0x01], false),
            Parse::Tls(ClientHelloInfo::default())
        );
        // A handshake that is not a ClientHello, and lengths that lie.
        assert_eq!(
            parse(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0], true),
            Parse::Tls(ClientHelloInfo::default())
        );
        assert_eq!(
            parse(&[0x16, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0xff, 0xff], true),
            Parse::Tls(ClientHelloInfo::default())
        );
        for n in 0..200u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = parse(&junk, true);
        }
    }

    #[test]
    fn app_protocols() {
        assert_eq!(classify(b"GET /x HTTP/1.1"), Some(AppStart::Http1));
        assert_eq!(classify(b"POST"), None);
        assert_eq!(classify(H2_PREFACE), Some(AppStart::H2));
        assert_eq!(classify(b"PRI * HTTP"), None);
        assert_eq!(classify(b"PRI / HTTP/1.1"), Some(AppStart::Http1));
        assert_eq!(classify(b"\x00\x01"), Some(AppStart::Other));
        assert_eq!(classify(b"get / "), Some(AppStart::Other));
    }
}
