//! Throughput of `authorize` over 1,000 policies applying to one workload.
//!
//! `cargo run --release -p sigil-policy --example bench_authorize [decisions]`
//!
//! Compiles 1,000 AuthorizationPolicies (DENY and ALLOW; exact, prefix and suffix principals,
//! namespaces, paths, path templates, methods, ports, headers, a few rules without a source),
//! runs ~1M decisions over a mix of HTTP, TCP and plaintext requests, and prints ns/decision
//! and allocations/decision against the targets (< 1 µs, 0 allocations).
// The counting allocator is the only unsafe here: it forwards to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sigil_policy::{
    CompiledAuthz, HttpRequest, MeshContext, Request, Workload, authorize, parse_documents,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const POLICIES: usize = 1_000;
const TARGET_NS: f64 = 1_000.0;

/// One policy document; the mix cycles through ten shapes.
fn policy(i: usize) -> String {
    let ns = i % 50;
    let (action, rules) = match i % 10 {
        0 | 1 => (
            "ALLOW",
            format!(
                "- from: [{{source: {{principals: [\"cluster.local/ns/ns{ns}/sa/svc{i}\"]}}}}]\n    to: [{{operation: {{methods: [GET, POST], paths: [\"/api/v{i}/*\"]}}}}]"
            ),
        ),
        2 => (
            "ALLOW",
            format!(
                "- from: [{{source: {{principals: [\"cluster.local/ns/ns{ns}/*\"]}}}}]\n    to: [{{operation: {{paths: [\"/items/{{*}}/detail{i}\"], ports: [\"8080\"]}}}}]"
            ),
        ),
        3 => (
            "ALLOW",
            format!(
                "- from: [{{source: {{principals: [\"*/sa/batch{i}\"]}}}}]\n    to: [{{operation: {{methods: [PUT]}}}}]"
            ),
        ),
        4 => (
            "ALLOW",
            format!(
                "- from: [{{source: {{namespaces: [ns{ns}]}}}}]\n    to: [{{operation: {{paths: [\"*.v{i}.json\"]}}}}]\n    when: [{{key: \"request.headers[x-tenant]\", values: [\"t{ns}*\"]}}]"
            ),
        ),
        5 | 6 => (
            "DENY",
            format!(
                "- from: [{{source: {{principals: [\"cluster.local/ns/ns{ns}/sa/svc{i}\"]}}}}]\n    to: [{{operation: {{paths: [\"/admin/{i}*\"]}}}}]"
            ),
        ),
        7 => (
            "DENY",
            format!(
                "- from: [{{source: {{principals: [\"cluster.local/ns/quarantine{i}/*\", \"*/sa/banned{i}\"]}}}}]"
            ),
        ),
        8 => (
            "DENY",
            format!(
                "- from: [{{source: {{namespaces: [legacy{ns}]}}}}]\n    to: [{{operation: {{methods: [DELETE], notPaths: [\"/tmp/*\"]}}}}]"
            ),
        ),
        _ if i % 100 == 9 => (
            // Rules without a source: checked for every request.
            "DENY",
            format!(
                "- to: [{{operation: {{paths: [\"/internal/{i}/*\"], ports: [\"9{i:03}\"]}}}}]"
            ),
        ),
        _ => (
            "ALLOW",
            format!(
                "- from: [{{source: {{principals: [\"cluster.local/ns/ns{ns}/sa/svc{i}\"], ipBlocks: [10.0.0.0/8]}}}}]"
            ),
        ),
    };
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p{i:04}, namespace: shop}}\nspec:\n  action: {action}\n  rules:\n  {rules}\n"
    )
}

struct Owned {
    peer: Option<String>,
    method: &'static str,
    path: String,
    port: u16,
    http: bool,
}

/// Requests aimed at the policies: each targets one policy shape (so some are permitted,
/// some denied by DENY, some by no ALLOW matching), plus strangers, plaintext and TCP.
fn requests() -> Vec<Owned> {
    let methods = ["GET", "POST", "PUT", "DELETE"];
    (0..1_000usize)
        .map(|k| {
            let base = (k * 7919) % 100 * 10;
            let shape = [0, 5, 2, 4, 9, 3, 8, 1, 6, 7][k % 10];
            let i = base + shape;
            let ns = i % 50;
            let peer = match (k / 10) % 10 {
                0 => None,
                1 => Some(format!("spiffe://cluster.local/ns/stranger/sa/nobody{k}")),
                _ => Some(match shape {
                    3 => format!("spiffe://cluster.local/ns/batch/sa/batch{i}"),
                    7 => format!("spiffe://cluster.local/ns/quarantine{i}/sa/x"),
                    8 => format!("spiffe://cluster.local/ns/legacy{ns}/sa/old"),
                    _ => format!("spiffe://cluster.local/ns/ns{ns}/sa/svc{i}"),
                }),
            };
            let path = match shape {
                0 | 1 => format!("/api/v{i}/orders"),
                5 | 6 => format!("/admin/{i}/x"),
                2 => format!("/items/42/detail{i}"),
                4 => format!("/a/b.v{i}.json"),
                _ => "/".to_owned(),
            };
            Owned {
                peer,
                method: methods[(k / 3) % 4],
                path,
                port: if k % 13 == 0 { 9009 } else { 8080 },
                http: k % 17 != 0,
            }
        })
        .collect()
}

fn main() {
    let decisions: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let text: Vec<String> = (0..POLICIES).map(policy).collect();
    let started = Instant::now();
    let resources = match parse_documents("bench.yaml", &text.join("---\n")) {
        Ok(r) => r,
        Err(errors) => {
            eprintln!("fixture does not parse: {errors:#?}");
            std::process::exit(1);
        }
    };
    let workload = Workload::new("shop", [("app", "shop")]);
    let authz = CompiledAuthz::from_resources(&resources, &workload, &MeshContext::default());
    let compile = started.elapsed();

    let owned = requests();
    let headers = [("x-tenant", "t1-eu")];
    let src: IpAddr = "10.2.3.4".parse().unwrap_or(IpAddr::from([10, 2, 3, 4]));
    let reqs: Vec<Request<'_>> = owned
        .iter()
        .map(|o| Request {
            http: o.http.then_some(HttpRequest {
                method: o.method,
                path: &o.path,
                host: "shop.svc",
                headers: &headers,
                jwt: None,
            }),
            ..Request::tcp(o.peer.as_deref(), src, o.port)
        })
        .collect();

    let mut permits = 0usize;
    for r in &reqs {
        permits += usize::from(authorize(&authz, r).is_permit());
    }
    let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    for n in 0..decisions {
        let d = authorize(&authz, black_box(&reqs[n % reqs.len()]));
        black_box(d);
    }
    let elapsed = started.elapsed();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;

    let ns = elapsed.as_nanos() as f64 / decisions as f64;
    let per = allocs as f64 / decisions as f64;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "compiled {} policies in {:.1} ms; request mix: {} requests, {} permitted",
        authz.policies().count(),
        compile.as_secs_f64() * 1e3,
        reqs.len(),
        permits
    );
    println!(
        "{decisions} decisions in {:.3} s: {ns:.1} ns/decision (target < {TARGET_NS:.0}) {}",
        elapsed.as_secs_f64(),
        verdict(ns < TARGET_NS)
    );
    println!(
        "allocations: {allocs} total, {per:.4}/decision (target 0) {}",
        verdict(allocs == 0)
    );
    if ns >= TARGET_NS || allocs != 0 {
        std::process::exit(1);
    }
}
