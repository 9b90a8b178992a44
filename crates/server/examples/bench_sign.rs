//! Benchmark: SVID signing on one core beside the machine bound measured in the same run, and
//! registration entry create/list rates on SQLite and PostgreSQL.
//!
//! `cargo run --release -p sigil-server --example bench_sign [-- --entries N --svids N]`
//!
//! The bound is 1 / (one ECDSA P-256 signature + one verification) with aws-lc-rs, the library
//! Sigil signs with: signing an SVID from a CSR needs at least that (verify the CSR's
//! self-signature, sign the certificate). Target: ≥ 70 % of the bound.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use sigil_ca::{CaConfig, CaManager, SvidRequest};
use sigil_datastore::{EntrySpec, Pagination, Selector};
use sigil_spiffe::{SpiffeId, TrustDomain};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Seconds per ECDSA P-256 sign and per verify, measured over `n` operations.
fn ecdsa_costs(n: usize) -> (f64, f64) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("keygen");
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("key");
    let msg = [0x5au8; 300];
    let t = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..n {
        sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
    }
    let sign = t.elapsed().as_secs_f64() / n as f64;
    let pk = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let t = Instant::now();
    for _ in 0..n {
        pk.verify(&msg, &sig).expect("verify");
    }
    let verify = t.elapsed().as_secs_f64() / n as f64;
    (sign, verify)
}

fn bench_signing(n: usize) {
    let (sign, verify) = ecdsa_costs(n.max(1000));
    let bound = 1.0 / (sign + verify);
    println!(
        "machine bound (aws-lc-rs, 1 core): ECDSA P-256 sign {:.0}/s, verify {:.0}/s",
        1.0 / sign,
        1.0 / verify
    );
    println!("  → SVID signing bound 1/(sign+verify) = {bound:.0} SVIDs/s");

    let dir = tempfile::tempdir().expect("tempdir");
    let td = TrustDomain::new("bench.example").expect("td");
    let now = time::OffsetDateTime::now_utc();
    let (mgr, _) =
        CaManager::load_or_init(CaConfig::new(td.clone(), dir.path()), None, now).expect("CA");
    let ca = mgr.active().expect("active CA");
    let csrs: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            sigil_server::node_client::new_key_and_csr()
                .expect("csr")
                .csr_der
        })
        .collect();
    let req = SvidRequest::new(
        td.id("/ns/bench/sa/workload").expect("id"),
        Duration::from_secs(3600),
    );
    // Warm up, then measure on this one thread.
    for c in csrs.iter().take(50) {
        ca.sign_csr(c, &req, now).expect("sign");
    }
    let t = Instant::now();
    for c in &csrs {
        ca.sign_csr(c, &req, now).expect("sign");
    }
    let rate = per_sec(n, t.elapsed());
    let ratio = rate / bound;
    println!(
        "SVID signing from CSRs (1 core): {rate:.0} SVIDs/s = {:.0}% of the bound (target ≥ 70%): {}",
        ratio * 100.0,
        if ratio >= 0.70 { "PASS" } else { "FAIL" }
    );
}

async fn bench_store(label: &str, url: &str, n: usize) {
    let ds = match sigil_datastore::open(url, Default::default()).await {
        Ok(ds) => ds,
        Err(e) => {
            println!("{label}: not measured ({e})");
            return;
        }
    };
    let parent =
        SpiffeId::parse("spiffe://bench.example/spire/agent/join_token/bench").expect("id");
    let t = Instant::now();
    for i in 0..n {
        let id = SpiffeId::parse(&format!("spiffe://bench.example/ns/bench/sa/w{i}")).expect("id");
        let sel = Selector::new("unix", format!("uid:{i}")).expect("selector");
        ds.create_entry(EntrySpec::new(id, parent.clone(), vec![sel]))
            .await
            .expect("create");
    }
    let created = t.elapsed();
    let t = Instant::now();
    let all = ds
        .list_entries(&Default::default(), &Pagination::all())
        .await
        .expect("list");
    let listed = t.elapsed();
    assert_eq!(all.items.len(), n);
    println!(
        "{label}: entry create {:.0}/s ({n} in {:.2}s, one transaction each); entry list {:.0} entries/s ({n} in {:.3}s)",
        per_sec(n, created),
        created.as_secs_f64(),
        per_sec(n, listed),
        listed.as_secs_f64()
    );
    ds.close().await;
}

fn psql(sql: &str) -> bool {
    std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn main() {
    let svids = arg("--svids", 5000);
    let entries = arg("--entries", 10_000);
    bench_signing(svids);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = dir.path().join("bench.sqlite3");
    rt.block_on(bench_store(
        "SQLite",
        &sqlite.display().to_string(),
        entries,
    ));
    let db = format!("sigil_bench_{}", std::process::id());
    if psql(&format!("CREATE DATABASE {db}")) {
        rt.block_on(bench_store(
            "PostgreSQL",
            &format!("postgres://postgres@127.0.0.1:5432/{db}"),
            entries,
        ));
        psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    } else {
        println!("PostgreSQL: not measured (cannot create a database on 127.0.0.1:5432)");
    }
}
