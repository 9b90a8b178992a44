//! Benchmark: Workload API latency and rotation fan-out, against the real server.
//!
//! `cargo run --release -p sigil-agent --example bench_workload [-- --n 2000 --warmup 100
//!  --streams 1000 --rotations 3 --server-workers 1]`
//!
//! Prints, in one run:
//! - `FetchX509SVID` first-response latency (open the stream, wait for the first message, drop
//!   it) for a cached SVID, beside a no-op gRPC call (health `Check`) on the same connection.
//!   Target: p99(fetch) ≤ 2 × p99(no-op). Every fetch goes through the real `UnixAttestor`
//!   (`/proc`, passwd and group files, cached executable digest) on the blocking pool;
//! - where a fetch's extra time goes: the same fetch on a second socket whose attestor returns
//!   fixed selectors (diagnostic), and the attestation alone, inline, through `spawn_blocking`
//!   on the server's runtime, and split into its file reads;
//! - the time to deliver one rotation (new SVID, new serial, same entry) to 1,000 open streams,
//!   over 10 connections and, if the fd limit allows, over 1,000 connections.
//!
//! The server runs in its own multi-thread tokio runtime (1 worker by default, plus the blocking
//! pool); the clients run in a current-thread runtime on the main thread of the same process.
//! It is a benchmark, not a test: nothing is asserted on timings.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use sigil_agent::attestor::{AttestError, Caller, UnixAttestor, WorkloadAttestor};
use sigil_agent::cache::{CacheState, CachedSvid, Selector};
use sigil_agent::client::{self, SecurityHeader, WorkloadClient};
use sigil_agent::jwt::{JwtError, JwtSource};
use sigil_agent::workload_api::{self, WorkloadApi};
use sigil_proto::workload::{X509svidRequest, X509svidResponse};
use sigil_spiffe::{Bundle, SpiffeId, TrustDomain};
use tokio::sync::watch;
use tonic::Streaming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use zeroize::Zeroizing;

use support::{arg, ms, pct, us};

const TD: &str = "example.org";
const OTHER_ENTRIES: usize = 50;
const MY_ENTRY: &str = "bench-entry";
const MY_PATH: &str = "/bench/workload";

// ---------------------------------------------------------------------------------------------
// Arguments and statistics

struct Summary {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort_unstable();
    Summary {
        p50: pct(&v, 50.0),
        p90: pct(&v, 90.0),
        p99: pct(&v, 99.0),
        max: v.last().copied().unwrap_or_default(),
    }
}

fn row(label: &str, s: &Summary) {
    println!(
        "  {label:<36} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        us(s.p50),
        us(s.p90),
        us(s.p99),
        us(s.max)
    );
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target { "PASS" } else { "FAIL" }
}

// ---------------------------------------------------------------------------------------------
// The cache: an in-code PKI, one entry for this process's uid, OTHER_ENTRIES for other uids

/// Effective uid and gid of this process, from `/proc/self/status` (what SO_PEERCRED reports).
fn my_ids() -> anyhow::Result<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u32> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} line in /proc/self/status"))?;
        Ok(line
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| anyhow!("short {name} line"))?
            .parse()?)
    };
    Ok((field("Uid:")?, field("Gid:")?))
}

/// Soft limit on open files, from `/proc/self/limits`.
fn fd_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let v = line.split_whitespace().nth(3)?;
    if v == "unlimited" {
        Some(u64::MAX)
    } else {
        v.parse().ok()
    }
}

struct Ca {
    td: TrustDomain,
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    serial: u64,
}

impl Ca {
    fn new(td: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("{td} CA"));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key)?;
        Ok(Ca {
            td: TrustDomain::new(td)?,
            cert: cert.der().clone(),
            issuer: Issuer::new(p, key),
            serial: 1,
        })
    }

    /// A cached SVID with a freshly issued leaf (new key, next serial).
    fn svid(
        &mut self,
        entry_id: &str,
        path: &str,
        selector: Selector,
    ) -> anyhow::Result<Arc<CachedSvid>> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let id = format!("spiffe://{}{path}", self.td);
        p.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(self.serial.into());
        self.serial += 1;
        let cert = p.signed_by(&key, &self.issuer)?;
        let not_after = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
        )? + 3600;
        Ok(Arc::new(CachedSvid {
            entry_id: entry_id.to_owned(),
            spiffe_id: SpiffeId::parse(&id)?,
            selectors: vec![selector],
            chain: vec![cert.der().clone()],
            key_pkcs8: Zeroizing::new(key.serialize_der()),
            not_after,
            hint: String::new(),
            federates_with: Vec::new(),
            jwt_svid_ttl: 0,
        }))
    }

    fn state(&self, mut svids: Vec<Arc<CachedSvid>>, revision: u64) -> anyhow::Result<CacheState> {
        svids.sort_by(|a, b| (&a.spiffe_id, &a.entry_id).cmp(&(&b.spiffe_id, &b.entry_id)));
        Ok(CacheState {
            trust_domain: self.td.clone(),
            svids,
            own_bundle: Bundle::from_x509_authorities(self.td.clone(), [self.cert.clone()])?,
            federated: BTreeMap::new(),
            revision,
            unavailable: None,
        })
    }
}

/// The served entries: ours (reissued on every rotation) and the others (kept as they are).
struct Entries {
    ca: Ca,
    mine: Selector,
    others: Vec<Arc<CachedSvid>>,
    revision: u64,
}

impl Entries {
    fn new(uid: u32) -> anyhow::Result<Self> {
        let mut ca = Ca::new(TD)?;
        let others = (0..OTHER_ENTRIES)
            .map(|i| {
                ca.svid(
                    &format!("other-{i:03}"),
                    &format!("/other/{i:03}"),
                    Selector::new("unix", format!("uid:{}", 4_000_000 + i)),
                )
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Entries {
            ca,
            mine: Selector::new("unix", format!("uid:{uid}")),
            others,
            revision: 0,
        })
    }

    /// The next snapshot, with a new SVID for our entry, and that SVID's chain (DER).
    fn next(&mut self) -> anyhow::Result<(Arc<CacheState>, Vec<u8>)> {
        let mine = self.ca.svid(MY_ENTRY, MY_PATH, self.mine.clone())?;
        let chain = mine.chain.iter().flat_map(|c| c.to_vec()).collect();
        let mut svids = self.others.clone();
        svids.push(mine);
        self.revision += 1;
        Ok((Arc::new(self.ca.state(svids, self.revision)?), chain))
    }
}

/// For the diagnostic server only: the selectors the real attestor gave this process, without
/// looking at anything.
struct Stub(Vec<Selector>);

impl WorkloadAttestor for Stub {
    fn attest(&self, _: &Caller) -> Result<Vec<Selector>, AttestError> {
        Ok(self.0.clone())
    }
}

/// JWT-SVIDs are not part of this benchmark.
struct NoJwt;

#[tonic::async_trait]
impl JwtSource for NoJwt {
    async fn jwt_svid(&self, _: &CachedSvid, _: &[String]) -> Result<String, JwtError> {
        Err(JwtError::Unavailable("not in this benchmark".into()))
    }
}

// ---------------------------------------------------------------------------------------------
// Latency

type Health = HealthClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, SecurityHeader>,
>;

async fn one_fetch(wl: &mut WorkloadClient, expect: &[u8]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut s = wl.fetch_x509svid(X509svidRequest {}).await?.into_inner();
    let m = s
        .message()
        .await?
        .ok_or_else(|| anyhow!("FetchX509SVID ended before its first message"))?;
    let d = t.elapsed();
    drop(s);
    ensure!(
        m.svids.len() == 1 && m.svids[0].x509_svid == expect,
        "FetchX509SVID returned {} SVIDs, not this process's one",
        m.svids.len()
    );
    Ok(d)
}

async fn one_noop(h: &mut Health) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let r = h
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    let d = t.elapsed();
    ensure!(
        r.status == ServingStatus::Serving as i32,
        "health says {}",
        r.status
    );
    Ok(d)
}

/// Samples of: FetchX509SVID (real attestor), health Check, FetchX509SVID on the diagnostic
/// server (stubbed attestor).
struct Latencies {
    fetch: Vec<Duration>,
    noop: Vec<Duration>,
    stubbed: Vec<Duration>,
}

async fn latency(
    socket: &Path,
    stub_socket: &Path,
    n: usize,
    warmup: usize,
    expect: &[u8],
) -> anyhow::Result<Latencies> {
    let ch = client::channel(socket).await?;
    let mut wl: WorkloadClient =
        sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient::with_interceptor(
            ch.clone(),
            SecurityHeader,
        );
    let mut health = HealthClient::with_interceptor(ch, SecurityHeader);
    let mut stub = client::connect(stub_socket).await?;
    let mut out = Latencies {
        fetch: Vec::with_capacity(n),
        noop: Vec::with_capacity(n),
        stubbed: Vec::with_capacity(n),
    };
    for i in 0..warmup + n {
        // Rotate which call goes first, so none always follows the same one.
        let mut d = [Duration::ZERO; 3];
        for k in 0..3 {
            let which = (i + k) % 3;
            d[which] = match which {
                0 => one_fetch(&mut wl, expect).await?,
                1 => one_noop(&mut health).await?,
                _ => one_fetch(&mut stub, expect).await?,
            };
        }
        if i >= warmup {
            out.fetch.push(d[0]);
            out.noop.push(d[1]);
            out.stubbed.push(d[2]);
        }
    }
    Ok(out)
}

/// p50 of `f` over `n` runs.
fn p50_of(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    Ok(summary(v).p50)
}

/// The file operations one attestation does, each timed alone (p50).
fn attest_pieces(pid: i32, n: usize) -> anyhow::Result<String> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = p50_of(n, || {
        std::fs::read_to_string(dir.join("stat"))?;
        Ok(())
    })?;
    let status = p50_of(n, || {
        std::fs::read_to_string(dir.join("status"))?;
        Ok(())
    })?;
    let names = p50_of(n, || {
        std::fs::read_to_string("/etc/passwd")?;
        std::fs::read_to_string("/etc/group")?;
        Ok(())
    })?;
    let exe = p50_of(n, || {
        let link = dir.join("exe");
        std::fs::read_link(&link)?;
        std::fs::File::open(&link)?.metadata()?;
        Ok(())
    })?;
    Ok(format!(
        "read stat {:.1} (done twice), read status {:.1}, read passwd+group {:.1}, \
         readlink+open+fstat exe {:.1}; sum {:.1}",
        us(stat),
        us(status),
        us(names),
        us(exe),
        us(stat * 2 + status + names + exe)
    ))
}

/// The attestation alone: inline on this thread, and as the server runs it (a task on the
/// server runtime awaiting `spawn_blocking`).
fn attest_costs(
    server_rt: &tokio::runtime::Runtime,
    attestor: &Arc<UnixAttestor>,
    caller: Caller,
    n: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>)> {
    let mut inline = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        attestor.attest(&caller)?;
        inline.push(t.elapsed());
    }
    let a = attestor.clone();
    let (hop, blocking) = server_rt.block_on(async move {
        tokio::spawn(async move {
            let (mut hop, mut blocking) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for _ in 0..n {
                let t = Instant::now();
                tokio::task::spawn_blocking(|| ()).await?;
                hop.push(t.elapsed());
                let a = a.clone();
                let t = Instant::now();
                tokio::task::spawn_blocking(move || a.attest(&caller)).await??;
                blocking.push(t.elapsed());
            }
            anyhow::Ok((hop, blocking))
        })
        .await?
    })?;
    Ok((inline, hop, blocking))
}

// ---------------------------------------------------------------------------------------------
// Rotation fan-out

struct Rotation {
    total: Duration,
    per_stream: Vec<Duration>,
    server_handed: Option<Duration>,
}

/// Opens `streams` FetchX509SVID streams over `conns` connections and waits for each first
/// message; returns the streams and the time that took.
async fn open_streams(
    socket: &Path,
    conns: usize,
    streams: usize,
) -> anyhow::Result<(Vec<Streaming<X509svidResponse>>, Duration)> {
    let t = Instant::now();
    let clients: Vec<WorkloadClient> = futures::stream::iter(0..conns)
        .map(|_| client::connect(socket))
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let opened: Vec<Streaming<X509svidResponse>> = futures::stream::iter(0..streams)
        .map(|i| {
            let mut c = clients[i % conns].clone();
            async move {
                let mut s = c.fetch_x509svid(X509svidRequest {}).await?.into_inner();
                s.message()
                    .await?
                    .ok_or_else(|| anyhow!("stream ended before its first message"))?;
                anyhow::Ok(s)
            }
        })
        .buffer_unordered(128)
        .try_collect()
        .await?;
    Ok((opened, t.elapsed()))
}

/// Publishes one rotation and times its delivery to every stream.
async fn rotate(
    streams: &mut Vec<Streaming<X509svidResponse>>,
    cache: &watch::Sender<Arc<CacheState>>,
    entries: &mut Entries,
    api: &WorkloadApi,
) -> anyhow::Result<Rotation> {
    let (state, chain) = entries.next()?;
    let chain = Arc::new(chain);
    let n = streams.len();
    let tasks: Vec<_> = streams
        .drain(..)
        .map(|mut s| {
            let chain = chain.clone();
            tokio::spawn(async move {
                let m = s
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("stream ended instead of delivering the rotation"))?;
                let at = Instant::now();
                ensure!(
                    m.svids.len() == 1 && m.svids[0].x509_svid == *chain,
                    "a stream got something other than the rotated SVID"
                );
                anyhow::Ok((s, at))
            })
        })
        .collect();
    // Let every task park on its stream before the clock starts.
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Watch the server's counter from a light thread: when were all messages handed over?
    let base = api.stats().messages_sent;
    let target = base + n as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let api = api.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            loop {
                if api.stats().messages_sent >= target {
                    return Some(Instant::now());
                }
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };

    let t0 = Instant::now();
    cache.send_replace(state);
    let mut per_stream = Vec::with_capacity(n);
    let results = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks))
        .await
        .map_err(|_| anyhow!("the rotation did not reach all {n} streams within 30 s"));
    stop.store(true, Ordering::Relaxed);
    let handed = watcher
        .join()
        .map_err(|_| anyhow!("watcher thread panicked"))?;
    for r in results? {
        let (s, at) = r??;
        per_stream.push(at.duration_since(t0));
        streams.push(s);
    }
    let total = per_stream.iter().copied().max().unwrap_or_default();
    Ok(Rotation {
        total,
        per_stream,
        server_handed: handed.map(|h| h.duration_since(t0)),
    })
}

async fn fanout(
    socket: &Path,
    conns: usize,
    streams: usize,
    rotations: usize,
    cache: &watch::Sender<Arc<CacheState>>,
    entries: &mut Entries,
    api: &WorkloadApi,
) -> anyhow::Result<()> {
    let (mut open, took) = open_streams(socket, conns, streams).await?;
    println!(
        "  opened {streams} streams on {conns} connections, all first messages in {:.1} ms; \
         server live streams: {}",
        ms(took),
        api.stats().live_streams
    );
    println!(
        "  {:<12} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "ms", "all", "p50", "p99", "max", "server handed"
    );
    for r in 1..=rotations {
        let rot = rotate(&mut open, cache, entries, api).await?;
        let s = summary(rot.per_stream);
        println!(
            "  rotation {r:<3} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>14}",
            ms(rot.total),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            rot.server_handed
                .map(|d| format!("{:.2}", ms(d)))
                .unwrap_or_else(|| "n/a".into())
        );
    }
    drop(open);
    // Let the server notice the closed streams before the next section.
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.stats().live_streams > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let n = arg("--n", 2000);
    let warmup = arg("--warmup", 100);
    let streams = arg("--streams", 1000);
    let rotations = arg("--rotations", 3).max(1);
    let server_workers = arg("--server-workers", 1).max(1);
    let few_conns = arg("--conns", 10).clamp(1, streams.max(1));

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (uid, gid) = my_ids()?;
    let mut entries = Entries::new(uid)?;
    let (state, my_chain) = entries.next()?;
    let (cache_tx, cache_rx) = watch::channel(state);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_workers)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    let socket: PathBuf = dir.path().join("agent").join("api.sock");
    let attestor = Arc::new(UnixAttestor::new());
    let api = WorkloadApi::new(cache_rx.clone(), attestor.clone(), Arc::new(NoJwt));
    // The diagnostic server: same runtime and cache, attestation stubbed with the selectors
    // the real attestor gives this process.
    let caller = Caller {
        pid: i32::try_from(std::process::id())?,
        uid,
        gid,
    };
    let stub_socket: PathBuf = dir.path().join("stub").join("api.sock");
    let stub_api = WorkloadApi::new(
        cache_rx.clone(),
        Arc::new(Stub(attestor.attest(&caller)?)),
        Arc::new(NoJwt),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let servers = [(&socket, &api), (&stub_socket, &stub_api)].map(|(socket, api)| {
        let _enter = server_rt.enter();
        let listener = workload_api::bind_workload_socket(socket)?;
        let api = api.clone();
        let socket = socket.clone();
        let mut stop_rx = stop_rx.clone();
        anyhow::Ok(server_rt.spawn(async move {
            let health = workload_api::health_reporter().await;
            workload_api::set_serving(&health, true).await;
            workload_api::serve(listener, api, &health, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
            .with_context(|| format!("the Workload API server on {} failed", socket.display()))
        }))
    });
    let servers = servers.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    println!(
        "== machine: {cpus} CPUs; server: tokio multi-thread runtime, {server_workers} worker(s) \
         + blocking pool (attestation), own threads; clients: tokio current-thread runtime on \
         the main thread; one process, socket in a temp dir"
    );
    println!(
        "   cache: {} entries (1 for unix:uid:{uid} = this process, {OTHER_ENTRIES} for other \
         uids); attestor: real UnixAttestor (/proc, passwd, group, sha256 of the exe, cached)",
        OTHER_ENTRIES + 1
    );

    client_rt.block_on(async {
        // Wait for the health service to report SERVING (set by the server task).
        let ch = client::channel(&socket).await?;
        let mut h = HealthClient::with_interceptor(ch, SecurityHeader);
        let deadline = Instant::now() + Duration::from_secs(5);
        while one_noop(&mut h).await.is_err() {
            if Instant::now() > deadline {
                bail!("the server never reported SERVING");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(())
    })?;

    // 1. Latency.
    println!(
        "== latency, µs: {n} calls of each kind after {warmup} warm-up each, one connection \
         (the diag row: a second one), sequential, the three calls in rotating order"
    );
    let lat = client_rt.block_on(latency(&socket, &stub_socket, n, warmup, &my_chain))?;
    println!(
        "  {:<36} {:>9} {:>9} {:>9} {:>9}",
        "call", "p50", "p90", "p99", "max"
    );
    let (f, o) = (summary(lat.fetch), summary(lat.noop));
    row("FetchX509SVID, first message", &f);
    row("grpc.health.v1.Health/Check (no-op)", &o);
    let r99 = us(f.p99) / us(o.p99);
    let r50 = us(f.p50) / us(o.p50);
    println!(
        "  p99 fetch/no-op = {r99:.2} (target ≤ 2.0): {}; p50 fetch/no-op = {r50:.2} (≤ 2.0): {}",
        verdict(r99, 2.0),
        verdict(r50, 2.0)
    );
    let st = summary(lat.stubbed);
    row("diag: FetchX509SVID, attest stubbed", &st);
    println!(
        "  (diag: same call on a second socket whose attestor returns fixed selectors: \
         p99 ratio to no-op {:.2}, p50 {:.2})",
        us(st.p99) / us(o.p99),
        us(st.p50) / us(o.p50)
    );

    // Where the extra time of a fetch goes.
    let (inline, hop, blocking) = attest_costs(&server_rt, &attestor, caller, n)?;
    println!("== attestation alone, µs ({n} each; no gRPC)");
    row("UnixAttestor::attest inline", &summary(inline));
    row("spawn_blocking(|| ()) round trip", &summary(hop));
    row("spawn_blocking(attest) round trip", &summary(blocking));
    println!("  pieces, p50 µs: {}", attest_pieces(caller.pid, n)?);
    println!(
        "  executable hashed {} time(s) in the whole run (digest cache)",
        attestor.hashes_computed()
    );

    // 2. Rotation fan-out.
    let limit = fd_soft_limit().unwrap_or(1024);
    // Each connection costs one fd on each side, both in this process.
    let many_ok = (streams as u64) * 2 + 256 <= limit;
    let mut layouts = vec![few_conns];
    if many_ok && streams != few_conns {
        layouts.push(streams);
    }
    for conns in layouts {
        println!(
            "== rotation fan-out: {streams} FetchX509SVID streams on {conns} connection(s) \
             ({:.0} per connection); time from publishing the new snapshot (new serial) until \
             a stream's client has the new SVID; server handed = all messages handed to the \
             streams' channels (sampled every ~0.2 ms, so it may exceed all)",
            streams as f64 / conns as f64
        );
        client_rt.block_on(fanout(
            &socket,
            conns,
            streams,
            rotations,
            &cache_tx,
            &mut entries,
            &api,
        ))?;
    }
    if !many_ok {
        println!(
            "  (skipped {streams} connections: the open-file soft limit is {limit}, needs ≥ {})",
            streams * 2 + 256
        );
    }

    stop_tx.send_replace(true);
    for server in servers {
        server_rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await })
            .map_err(|_| anyhow!("a server did not stop within 5 s"))???;
    }
    let stats = api.stats();
    println!(
        "== server totals: {} messages sent, {} streams still live",
        stats.messages_sent, stats.live_streams
    );
    server_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
