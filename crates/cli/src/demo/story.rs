//! The document's story as checks, in its order: PERMISSIVE (mTLS and plaintext both work, the
//! readiness report names the plaintext caller), STRICT with the 9090 exception, the three
//! errors of the debugging section (through `sigil diagnose tls -o json`), the
//! AuthorizationPolicy, certificate rotation under continuous traffic, and billing's proxy
//! admin views.
//!
//! The TLS-to-plaintext-port error is reproduced before the AuthorizationPolicy is applied: with
//! it, a TLS stream to the DISABLE port is spliced as TCP, and the policy's HTTP-only rules
//! cannot match a TCP stream, so the proxy closes it (diagnose reports connection-terminated).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::Table;
use super::app::{Resp, request};
use super::mesh::Ports;
use super::setup::{Mesh, SVID_TTL_SECS, spiffe_id};

/// The plaintext client ("a pod without a sidecar") connects from its own loopback address, so
/// the readiness report can name it.
const PLAINTEXT_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
const CHARGE: &str = "/api/v1/charge";
const CHECKOUT_URI: &str = "URI=spiffe://cluster.local/ns/payments/sa/checkout-service";

fn show(r: &std::io::Result<Resp>) -> String {
    match r {
        Ok(r) => format!("{} {}", r.status, r.body.trim()),
        Err(e) => format!("no HTTP answer: {e}"),
    }
}

pub async fn run(m: &Mesh, t: &mut Table) -> anyhow::Result<()> {
    let p = &m.ports;
    let billing = Ports::addr(p.billing);
    let health = Ports::addr(p.health);
    let checkout = Ports::addr(p.checkout_out);
    let frontend = Ports::addr(p.frontend_out);

    println!("PERMISSIVE (migration phase)");
    let r = m
        .eventually("checkout reaches billing", 15, || async {
            request(checkout, "POST", CHARGE, None)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| if r.status == 200 { Ok(r) } else { Err(r.body) })
        })
        .await
        .map_err(std::io::Error::other);
    // 200 alone would also come back over plaintext: the peer identity in XFCC proves mTLS.
    t.add(
        "PERMISSIVE: checkout → billing over mTLS",
        "200, XFCC URI=…/sa/checkout-service",
        show(&r),
        r.as_ref()
            .is_ok_and(|r| r.status == 200 && r.body.contains(CHECKOUT_URI)),
    );
    let r = request(billing, "POST", CHARGE, Some(PLAINTEXT_CLIENT)).await;
    t.add(
        "PERMISSIVE: plaintext client → billing",
        "200 (plaintext accepted, no peer identity)",
        show(&r),
        r.as_ref()
            .is_ok_and(|r| r.status == 200 && r.body.contains("\"xfcc\":null")),
    );
    let got = readiness(m, p.billing).await;
    let pass = got.as_ref().is_ok_and(|g| g.0);
    t.add(
        "strict-readiness names the plaintext client",
        &format!(
            "billing-service:{} would_break, source {PLAINTEXT_CLIENT}",
            p.billing
        ),
        got.map(|g| g.1).unwrap_or_else(|e| format!("{e:#}")),
        pass,
    );

    println!("STRICT (final enforcement), port 9090 exception");
    m.apply(&["strict"]).await?;
    // The agent streams the change to the proxies: wait until it took effect.
    let _ = m
        .eventually("STRICT in force", 15, || async {
            match request(billing, "POST", CHARGE, None).await {
                Err(_) => Ok(()),
                Ok(r) => Err(format!("plaintext still answered {}", r.status)),
            }
        })
        .await;
    let r = request(billing, "POST", CHARGE, Some(PLAINTEXT_CLIENT)).await;
    // Refused means the proxy closed or reset the connection without an answer, while it
    // still serves mTLS on the same port (not a dead proxy, not a timeout).
    let closed = matches!(&r, Err(e) if matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
    ) || e.to_string().contains("closed without an answer"));
    let alive = request(checkout, "POST", CHARGE, None)
        .await
        .is_ok_and(|r| r.status == 200 && r.body.contains(CHECKOUT_URI));
    t.add(
        "STRICT: plaintext client → billing",
        "closed without an answer; mTLS on the port still 200",
        format!(
            "{}; mTLS from checkout: {}",
            show(&r),
            if alive { "200" } else { "FAILED" }
        ),
        closed && alive,
    );
    let r = request(health, "GET", "/healthz", Some(PLAINTEXT_CLIENT)).await;
    t.add(
        "STRICT: plaintext GET /healthz on :9090",
        "200 (portLevelMtls 9090 DISABLE)",
        show(&r),
        r.as_ref().is_ok_and(|r| r.status == 200),
    );

    println!("Debugging section: sigil diagnose tls");
    let bundle = m.bundle.to_string_lossy().into_owned();
    let (fc, fk) = (
        m.foreign_client.0.to_string_lossy().into_owned(),
        m.foreign_client.1.to_string_lossy().into_owned(),
    );
    let (mc, mk) = (
        m.mesh_client.0.to_string_lossy().into_owned(),
        m.mesh_client.1.to_string_lossy().into_owned(),
    );
    let b = billing.to_string();
    let h = health.to_string();
    let bid = spiffe_id("billing-service");
    let cases: [(&str, Vec<&str>, &str, &str); 4] = [
        (
            "diagnose: client cert from a foreign CA",
            vec![&b, "--cert", &fc, "--key", &fk, "--ca", &bundle],
            "client-cert-rejected",
            "CERTIFICATE_VERIFY_FAILED",
        ),
        (
            "diagnose: plaintext to STRICT :8080",
            vec![&b, "--plaintext"],
            "plaintext-rejected",
            "connection termination",
        ),
        (
            "diagnose: TLS to plaintext port :9090",
            vec![&h, "--ca", &bundle],
            "not-tls",
            "RX_RECORD_TOO_LONG",
        ),
        (
            "diagnose: mesh-CA client cert (x509 mint)",
            vec![
                &b,
                "--cert",
                &mc,
                "--key",
                &mk,
                "--ca",
                &bundle,
                "--expect-id",
                &bid,
            ],
            "ok",
            "",
        ),
    ];
    for (name, args, code, words) in cases {
        let mut all = vec!["diagnose", "tls"];
        all.extend(args);
        all.extend(["-o", "json"]);
        let o = m.sigil(&all).await?;
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        let got_code = v["code"].as_str().unwrap_or("(no JSON)").to_owned();
        let summary = v["summary"].as_str().unwrap_or(o.stderr.trim()).to_owned();
        let want_exit = if code == "ok" { 0 } else { 2 };
        let pass =
            got_code == code && summary.contains(words) && o.status.code() == Some(want_exit);
        let expected = if words.is_empty() {
            format!("{code}, exit 0")
        } else {
            format!("{code}: {words}, exit 2")
        };
        let got = format!(
            "{got_code}, exit {}: {summary}",
            o.status.code().unwrap_or(-1)
        );
        t.add(name, &expected, got, pass);
    }

    println!("AuthorizationPolicy: only checkout-service may POST /api/v1/charge");
    m.apply(&["base"]).await?;
    let _ = m
        .eventually("the AuthorizationPolicy in force", 15, || async {
            match request(frontend, "POST", CHARGE, None).await {
                Ok(f) if f.status == 403 => Ok(()),
                other => Err(format!("frontend: {}", show(&other))),
            }
        })
        .await;
    let r = request(checkout, "POST", CHARGE, None).await;
    let xfcc = r.as_ref().ok().and_then(|r| {
        serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()?
            .get("xfcc")?
            .as_str()
            .map(str::to_owned)
    });
    let want = format!("URI={}", spiffe_id("checkout-service"));
    t.add(
        "STRICT: checkout → billing POST /api/v1/charge",
        &format!("200, XFCC {want}"),
        match (&r, &xfcc) {
            (Ok(r), Some(x)) => format!(
                "{}, XFCC {}",
                r.status,
                x.split(';').find(|f| f.starts_with("URI=")).unwrap_or(x)
            ),
            _ => show(&r),
        },
        r.as_ref().is_ok_and(|r| r.status == 200)
            && xfcc.as_ref().is_some_and(|x| x.contains(&want)),
    );
    let r = request(frontend, "POST", CHARGE, None).await;
    t.add(
        "STRICT: frontend → billing",
        "403 RBAC: access denied",
        show(&r),
        r.as_ref()
            .is_ok_and(|r| r.status == 403 && r.body.contains("RBAC: access denied")),
    );
    let r = request(health, "GET", "/healthz", Some(PLAINTEXT_CLIENT)).await;
    t.add(
        "policy: plaintext GET /healthz on :9090",
        "200 (billing-service-health allows it)",
        show(&r),
        r.as_ref().is_ok_and(|r| r.status == 200),
    );

    rotation(m, t, checkout).await?;

    println!("billing-service proxy admin");
    let admin = Ports::addr(p.admin[0].0);
    let stats = Ports::addr(p.admin[0].1);
    let certs = request(admin, "GET", "/certs", None).await;
    let v: serde_json::Value = certs
        .as_ref()
        .ok()
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default();
    t.add(
        "billing proxy /certs",
        &format!("{bid}, valid"),
        match &certs {
            Ok(_) => format!(
                "{} serial {} expires in {}s",
                v["spiffe_id"], v["serial"], v["seconds_to_expiry"]
            ),
            Err(e) => e.to_string(),
        },
        v["spiffe_id"] == bid.as_str() && v["seconds_to_expiry"].as_i64().is_some_and(|s| s > 0),
    );
    let st = request(stats, "GET", "/stats", None).await;
    let key = format!("listener.0.0.0.0_{}.ssl.handshake: ", p.billing);
    let line = st.as_ref().ok().and_then(|r| {
        r.body
            .lines()
            .find(|l| l.starts_with(&key))
            .map(str::to_owned)
    });
    let n: u64 = line
        .as_deref()
        .and_then(|l| l.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    t.add(
        "billing proxy /stats ssl.handshake",
        "> 0",
        line.unwrap_or_else(|| show(&st)),
        n > 0,
    );
    Ok(())
}

/// `sigil strict-readiness -n payments -o json`, until billing's port names the plaintext
/// client (the proxies report every few seconds): (pass, what it said).
async fn readiness(m: &Mesh, port: u16) -> anyhow::Result<(bool, String)> {
    let sock = m.admin_socket.to_string_lossy().into_owned();
    let want = PLAINTEXT_CLIENT.to_string();
    m.eventually("strict-readiness names the plaintext client", 15, || {
        let sock = sock.clone();
        let want = want.clone();
        async move {
            let o = m
                .sigil(&[
                    "strict-readiness",
                    "-n",
                    "payments",
                    "-o",
                    "json",
                    "--socket-path",
                    &sock,
                ])
                .await
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_str(&o.stdout).map_err(|e| format!("{e}: {}", o.stderr))?;
            let row = v["ports"]
                .as_array()
                .and_then(|ps| {
                    ps.iter()
                        .find(|r| r["workload"] == "payments/billing-service" && r["port"] == port)
                })
                .ok_or_else(|| format!("no row for billing-service:{port} yet"))?;
            let sources: Vec<String> = row["plaintextSources"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x["address"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let said = format!(
                "billing-service:{port} {} ({} mTLS, {} plaintext), sources {}; exit {}",
                row["verdict"].as_str().unwrap_or("?"),
                row["mtlsConnections"],
                row["plaintextConnections"],
                sources.join(","),
                o.status.code().unwrap_or(-1)
            );
            if sources.contains(&want) && row["verdict"] == "would_break" {
                Ok((o.status.code() == Some(2), said))
            } else {
                Err(said)
            }
        }
    })
    .await
}

async fn serial(addr: SocketAddr) -> Option<String> {
    let r = request(addr, "GET", "/certs", None).await.ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    v["serial"].as_str().map(str::to_owned)
}

/// Continuous checkout → billing traffic across at least one SVID renewal of both.
async fn rotation(m: &Mesh, t: &mut Table, checkout: SocketAddr) -> anyhow::Result<()> {
    let window = Duration::from_secs(u64::from(SVID_TTL_SECS) * 3 / 5);
    println!(
        "Rotation: {}s of continuous traffic, SVID TTL {SVID_TTL_SECS}s (renewed at half-life)",
        window.as_secs()
    );
    let b_admin = Ports::addr(m.ports.admin[0].0);
    let c_admin = Ports::addr(m.ports.admin[1].0);
    let (b0, c0) = (serial(b_admin).await, serial(c_admin).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let stop = stop.clone();
        tasks.spawn(async move {
            let (mut ok, mut failed, mut last_err) = (0u32, 0u32, String::new());
            // The XFCC `Hash=` billing's proxy saw: the client certificate checkout's proxy
            // really used in the handshake (first and last of the run).
            let mut hashes: (Option<String>, Option<String>) = (None, None);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match request(checkout, "POST", CHARGE, None).await {
                    Ok(r) if r.status == 200 => {
                        ok += 1;
                        let h = r
                            .body
                            .split("Hash=")
                            .nth(1)
                            .and_then(|x| x.split(';').next())
                            .map(str::to_owned);
                        if hashes.0.is_none() {
                            hashes.0 = h.clone();
                        }
                        hashes.1 = h;
                    }
                    other => {
                        failed += 1;
                        last_err = show(&other);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed, last_err, hashes)
        });
    }
    // Traffic runs for the window and then until both proxies hold a new SVID (a loaded
    // machine may renew late), at most twice the window.
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = started.elapsed();
        if elapsed >= window * 2 {
            break;
        }
        if elapsed >= window {
            let (b, c) = (serial(b_admin).await, serial(c_admin).await);
            if b.is_some() && c.is_some() && b != b0 && c != c0 {
                break;
            }
        }
    }
    // A moment more of traffic, so new handshakes carry the new certificates.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let window = started.elapsed();
    let (mut ok, mut failed, mut last_err) = (0, 0, String::new());
    let mut handshake_certs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (o, f, e, h) = r?;
        ok += o;
        failed += f;
        if !e.is_empty() {
            last_err = e;
        }
        handshake_certs.push(h);
    }
    let rotated_in_use = handshake_certs
        .iter()
        .any(|(first, last)| first.is_some() && last.is_some() && first != last);
    let (b1, c1) = (serial(b_admin).await, serial(c_admin).await);
    let changed = |a: &Option<String>, b: &Option<String>| a.is_some() && b.is_some() && a != b;
    let s = |x: &Option<String>| {
        x.as_deref()
            .map(|v| v.chars().take(8).collect::<String>() + "…")
            .unwrap_or_else(|| "?".into())
    };
    t.add(
        "rotation: SVID serials change",
        "billing and checkout serials change",
        format!(
            "billing {}→{}, checkout {}→{}",
            s(&b0),
            s(&b1),
            s(&c0),
            s(&c1)
        ),
        changed(&b0, &b1) && changed(&c0, &c1),
    );
    t.add(
        "rotation: the new certificate is used in handshakes",
        "XFCC Hash= of checkout's certificate changes",
        if rotated_in_use {
            "changed".to_owned()
        } else {
            "unchanged".to_owned()
        },
        rotated_in_use,
    );
    t.add(
        &format!("rotation: requests during {}s", window.as_secs()),
        "0 failed",
        if failed == 0 {
            format!("{ok} ok, 0 failed")
        } else {
            format!("{ok} ok, {failed} failed (last: {last_err})")
        },
        failed == 0 && ok > 0,
    );
    Ok(())
}
