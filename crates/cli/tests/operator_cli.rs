//! Entry, token and agent commands as an operator uses them, and a datastore outage mid-run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PgDb, ServerProc};

const AGENT: &str = "spiffe://cluster.local/spire/agent/join_token/abc";

fn json(s: &ServerProc, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-output", "json"]);
    serde_json::from_str(&s.ok(&a)).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["spiffe_id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn entry_filters_update_delete_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), None);
    let mk = |name: &str, parent: &str, sels: &[&str]| {
        let id = format!("spiffe://cluster.local/w/{name}");
        let mut args = vec!["entry", "create", "-spiffeID", &id, "-parentID", parent];
        for sel in sels {
            args.extend(["-selector", sel]);
        }
        json(&s, &args)["id"].as_str().unwrap().to_owned()
    };
    let a = mk("a", AGENT, &["unix:uid:1", "unix:gid:1"]);
    mk("b", AGENT, &["unix:uid:2"]);
    mk(
        "c",
        "spiffe://cluster.local/spire/agent/join_token/other",
        &["unix:uid:1"],
    );

    assert_eq!(ids(&json(&s, &["entry", "list"])), ["a", "b", "c"]);
    assert_eq!(
        ids(&json(&s, &["entry", "show", "-parentID", AGENT])),
        ["a", "b"]
    );
    assert_eq!(
        ids(&json(
            &s,
            &["entry", "show", "-spiffeID", "spiffe://cluster.local/w/b"]
        )),
        ["b"]
    );
    // SPIRE's default for -selector filters is superset: entries holding all given selectors.
    assert_eq!(
        ids(&json(&s, &["entry", "show", "-selector", "unix:uid:1"])),
        ["a", "c"]
    );
    let exact = [
        "entry",
        "show",
        "-selector",
        "unix:uid:1",
        "-matchSelectorsOn",
        "exact",
    ];
    assert_eq!(ids(&json(&s, &exact)), ["c"]);
    let subset = [
        "entry",
        "show",
        "-selector",
        "unix:uid:1",
        "-selector",
        "unix:uid:2",
        "-matchSelectorsOn",
        "subset",
    ];
    assert_eq!(ids(&json(&s, &subset)), ["b", "c"]);
    let any = [
        "entry",
        "show",
        "-selector",
        "unix:gid:1",
        "-selector",
        "unix:uid:2",
        "-matchSelectorsOn",
        "any",
    ];
    assert_eq!(ids(&json(&s, &any)), ["a", "b"]);
    let shown = s.ok(&["entry", "show", "-entryID", &a]);
    assert!(shown.starts_with("Found 1 entry"), "{shown}");

    let updated = json(
        &s,
        &[
            "entry",
            "update",
            "-entryID",
            &a,
            "-x509SVIDTTL",
            "120",
            "-dns",
            "a.payments.svc",
        ],
    );
    assert_eq!(updated["x509_svid_ttl"], 120);
    assert_eq!(updated["dns_names"][0], "a.payments.svc");
    assert_eq!(
        updated["selectors"].as_array().unwrap().len(),
        2,
        "update must keep what it was not given"
    );

    let out = s.ok(&["entry", "delete", "-entryID", &a]);
    assert!(out.contains(&a), "{out}");
    assert_eq!(ids(&json(&s, &["entry", "list"])), ["b", "c"]);

    // A node alias: -node parents the entry to the server.
    let alias = json(
        &s,
        &[
            "entry",
            "create",
            "-node",
            "-spiffeID",
            "spiffe://cluster.local/nodes/web",
            "-selector",
            "x509pop:subject:cn:web-1",
        ],
    );
    assert_eq!(alias["parent_id"], "spiffe://cluster.local/spire/server");

    let t1 = json(&s, &["token", "generate", "-ttl", "60"]);
    let t2 = json(&s, &["token", "generate"]);
    assert_ne!(t1["value"], t2["value"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = t1["expires_at"].as_i64().unwrap();
    assert!((now + 55..=now + 65).contains(&exp), "{exp} vs {now}");
    assert!(s.ok(&["token", "generate"]).starts_with("Token: "));
    assert_eq!(s.ok(&["agent", "list"]).trim(), "No attested agents found");
    s.stop();
}

/// A TCP relay to PostgreSQL that the test can cut and restore, to take the datastore away
/// from a running server.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start() -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(client) = c else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                    continue;
                };
                conns2.lock().unwrap().push(client.try_clone().unwrap());
                conns2.lock().unwrap().push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Relay { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn datastore_outage_mid_run_is_reported_and_recovered() {
    let Some(db) = PgDb::create() else { return };
    let relay = Relay::start();
    let url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port));
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), Some(&url));
    let create = |name: &str| {
        s.cli(&[
            "entry",
            "create",
            "-spiffeID",
            &format!("spiffe://cluster.local/w/{name}"),
            "-parentID",
            AGENT,
            "-selector",
            "unix:uid:7",
        ])
    };
    assert!(create("before").status.success());

    relay.cut();
    let out = create("during");
    assert!(
        !out.status.success(),
        "a write succeeded with the datastore down"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unavailable"), "{err}");
    let health = s.cli(&["server", "healthcheck"]);
    assert!(
        !health.status.success(),
        "healthcheck passed with the datastore down"
    );

    relay.restore();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !create("after").status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not recover: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "-output", "json"])).unwrap();
    assert_eq!(
        ids(&listed),
        ["after", "before"],
        "the failed write left state behind"
    );
    s.stop();
}
