//! The demo app (`sigil demo app`, hidden): the payments services of the seed document, with no
//! knowledge of TLS. `POST /api/v1/charge` answers 200 with the `x-forwarded-client-cert` the
//! proxy gave it; `GET /healthz` answers 200 on the health port (and the API port). Anything that
//! is not HTTP gets `400 Bad Request`, as a real HTTP server answers a TLS ClientHello.
//!
//! Also the demo's own HTTP/1.1 client (one request per connection).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The service name it answers as.
    #[arg(long)]
    pub name: String,
    /// API address (POST /api/v1/charge, GET /healthz).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Health address (GET /healthz).
    #[arg(long)]
    pub health: Option<SocketAddr>,
}

/// Serves until killed.
pub fn serve(a: AppArgs) -> anyhow::Result<()> {
    let api =
        TcpListener::bind(a.listen).map_err(|e| anyhow::anyhow!("--listen {}: {e}", a.listen))?;
    if let Some(h) = a.health {
        let health = TcpListener::bind(h).map_err(|e| anyhow::anyhow!("--health {h}: {e}"))?;
        let name = a.name.clone();
        std::thread::spawn(move || accept(health, name));
    }
    eprintln!("{} listening on {}", a.name, a.listen);
    accept(api, a.name);
    Ok(())
}

fn accept(l: TcpListener, name: String) {
    for conn in l.incoming() {
        let Ok(c) = conn else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            let _ = connection(c, &name);
        });
    }
}

/// Requests on one connection (keep-alive), one at a time.
fn connection(mut c: TcpStream, name: &str) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if !buf.is_empty() && !buf.starts_with(b"GET ") && !buf.starts_with(b"POST ") {
                let r = respond(400, "text/plain", "not an HTTP request\n", true);
                c.write_all(r.as_bytes())?;
                // Read what the client still sends before closing, so the close is a FIN and
                // not a reset that could overtake the answer.
                c.shutdown(std::net::Shutdown::Write)?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                while c.read(&mut tmp).is_ok_and(|n| n > 0) {}
                return Ok(());
            }
            let n = c.read(&mut tmp)?;
            if n == 0 || buf.len() > 64 * 1024 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            let n = c.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..end + len);
        let mut parts = head.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = match (method, path) {
            ("POST", "/api/v1/charge") => {
                let body = serde_json::json!({
                    "service": name,
                    "charged": true,
                    "xfcc": header("x-forwarded-client-cert"),
                });
                respond(200, "application/json", &format!("{body}\n"), close)
            }
            ("GET", "/healthz") => respond(200, "text/plain", "ok\n", close),
            _ => respond(404, "text/plain", "not found\n", close),
        };
        c.write_all(resp.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn respond(status: u16, ctype: &str, body: &str, close: bool) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let conn = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: {conn}\r\n\r\n{body}",
        body.len()
    )
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

/// One request on a fresh connection (optionally from a chosen loopback source address, so the
/// proxies' per-source counters can name the caller). `Err` when there is no HTTP answer
/// (refused, reset, closed).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    from: Option<IpAddr>,
) -> std::io::Result<Resp> {
    let go = async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        if let Some(ip) = from {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        let mut c = sock.connect(addr).await?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: billing-service.payments.svc.cluster.local\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        c.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        c.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                std::io::Error::other(if text.is_empty() {
                    "connection closed without an answer".to_owned()
                } else {
                    format!(
                        "not an HTTP answer: {:?}",
                        text.chars().take(40).collect::<String>()
                    )
                })
            })?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_owned())
            .unwrap_or_default();
        Ok(Resp { status, body })
    };
    match tokio::time::timeout(Duration::from_secs(5), go).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("no answer within 5s")),
    }
}
