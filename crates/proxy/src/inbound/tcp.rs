//! Opaque TCP: authorize once per connection, then splice to the app.

use std::sync::Arc;

use sigil_policy::{Request, authorize};
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::stats::RequestLabels;

use super::{Conn, Io, Listener};

/// Authorizes `conn` as a TCP connection and, if allowed, copies bytes both ways between
/// `io` and the app until either side closes. `protocol` names the case for the log.
pub(super) async fn proxy<S: Io>(l: &Arc<Listener>, mut io: S, conn: &Conn, protocol: &str) {
    let port = l.port.port;
    let (allowed, verdict, dry_run) = {
        let mesh = l.ctx.mesh.current();
        let mut rq = Request::tcp(conn.principal(), conn.source.ip(), port);
        rq.destination_ip = conn.local.map(|a| a.ip());
        let decision = authorize(&mesh.authz, &rq);
        (
            decision.is_permit(),
            decision.verdict.to_string(),
            decision.dry_run.map(|v| v.is_permit()),
        )
    };
    l.stats.rbac(allowed, dry_run);
    let dry_run = dry_run.map(|ok| if ok { "would allow" } else { "would deny" });

    let (mut rx, mut tx, mut failure) = (0u64, 0u64, None::<String>);
    if allowed {
        match TcpStream::connect(l.port.app).await {
            Ok(mut app) => {
                let _ = app.set_nodelay(true);
                match tokio::io::copy_bidirectional_with_sizes(
                    &mut io,
                    &mut app,
                    crate::COPY_BUFFER,
                    crate::COPY_BUFFER,
                )
                .await
                {
                    Ok((from_client, to_client)) => (rx, tx) = (from_client, to_client),
                    Err(e) => debug!(error = %e, "tcp connection ended with an error"),
                }
            }
            Err(e) => {
                failure = Some(format!(
                    "cannot connect to the app at {}: {e}; is it listening?",
                    l.port.app
                ));
            }
        }
    } else {
        info!(source = %conn.source, port, peer = conn.principal().unwrap_or("none"), "connection {verdict}");
    }
    l.stats.bytes(rx, tx);
    l.ctx.stats.request(RequestLabels {
        direction: "inbound".into(),
        port,
        source_principal: conn
            .peer
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |p| p.spiffe_id.clone()),
        decision: if allowed { "allow" } else { "deny" }.into(),
        response_code: 0,
    });
    if let Some(f) = &failure {
        info!(source = %conn.source, port, "{f}");
    }
    if l.ctx.access_log.enabled() {
        let mut m = conn.log_fields(port);
        m.insert("protocol".into(), protocol.into());
        m.insert("bytes_in".into(), rx.into());
        m.insert("bytes_out".into(), tx.into());
        m.insert(
            "duration_ms".into(),
            (conn.start.elapsed().as_millis() as u64).into(),
        );
        m.insert(
            "decision".into(),
            if allowed { "allow" } else { "deny" }.into(),
        );
        m.insert("policy".into(), verdict.into());
        if let Some(d) = dry_run {
            m.insert("dry_run".into(), d.into());
        }
        if let Some(f) = failure {
            m.insert("reason".into(), f.into());
        }
        l.ctx.access_log.write(serde_json::Value::Object(m));
    }
}
