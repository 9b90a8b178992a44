//! `authorize` allocates nothing for exact, prefix, suffix, path, method, port, CIDR and
//! header matches — measured with a counting global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The counting allocator is the only unsafe here: it forwards to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sigil_policy::{
    CompiledAuthz, HttpRequest, MeshContext, Request, Workload, authorize, parse_documents,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counter is a
// const-initialized thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-checkout, namespace: payments}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/payments/sa/checkout"]}}]
    to: [{operation: {methods: [POST], paths: ["/api/v1/charge", "/api/v1/refund*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/web/*"], notPrincipals: ["*/sa/untrusted"]}}]
    to: [{operation: {methods: [GET], paths: ["*.json"], ports: ["8080"]}}]
  - from: [{source: {namespaces: [ops], ipBlocks: [10.0.0.0/8]}}]
    when: [{key: "request.headers[x-tenant]", values: ["acme*"]}]
  - to: [{operation: {paths: ["/users/{*}/orders/{**}"], hosts: ["*.payments.svc"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: payments}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [ops]}}]
    to: [{operation: {paths: ["/admin*"]}}]
  - from: [{source: {principals: ["*/sa/banned"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-refunds, namespace: payments}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["/api/v1/refund*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow-deny
  namespace: payments
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE]}}]
"#;

#[test]
fn authorize_does_not_allocate() {
    let resources = parse_documents("alloc.yaml", POLICIES).unwrap();
    let authz = CompiledAuthz::from_resources(
        &resources,
        &Workload::new("payments", []),
        &MeshContext::default(),
    );
    let headers = &[("x-tenant", "acme-eu"), ("user-agent", "curl")];
    let src = "10.1.2.3".parse().unwrap();
    let http = |peer, method, path, host| Request {
        http: Some(HttpRequest {
            method,
            path,
            host,
            headers,
            jwt: None,
        }),
        ..Request::tcp(peer, src, 8080)
    };
    let requests = [
        http(
            Some("spiffe://cluster.local/ns/payments/sa/checkout"),
            "POST",
            "/api/v1/charge",
            "b",
        ),
        http(
            Some("spiffe://cluster.local/ns/payments/sa/checkout"),
            "POST",
            "/api/v1/refund/7",
            "b",
        ),
        http(
            Some("spiffe://cluster.local/ns/web/sa/frontend"),
            "GET",
            "/x/a.json?q=1",
            "b",
        ),
        http(
            Some("spiffe://cluster.local/ns/web/sa/untrusted"),
            "GET",
            "/a.json",
            "b",
        ),
        http(
            Some("spiffe://cluster.local/ns/ops/sa/admin"),
            "GET",
            "/admin/x",
            "b",
        ),
        http(
            Some("spiffe://cluster.local/ns/x/sa/banned"),
            "GET",
            "/",
            "b",
        ),
        http(None, "GET", "/users/1/orders/2/3", "api.payments.svc"),
        http(None, "DELETE", "/admin", "b"),
        Request::tcp(Some("spiffe://cluster.local/ns/web/sa/frontend"), src, 8080),
        Request::tcp(None, src, 9090),
    ];
    // Warm up (lazy statics in std, if any).
    for r in &requests {
        std::hint::black_box(authorize(&authz, r));
    }
    let mut decisions = Vec::with_capacity(requests.len() * 100);
    let before = allocations();
    for _ in 0..100 {
        for r in &requests {
            let d = authorize(&authz, r);
            // Push into pre-reserved capacity: no allocation.
            decisions.push((d.is_permit(), d.audit.is_some(), d.dry_run.is_some()));
        }
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "authorize allocated {} times",
        after - before
    );
    // The decisions are real, not all the same.
    assert!(decisions.iter().any(|d| d.0) && decisions.iter().any(|d| !d.0));
    assert!(decisions.iter().any(|d| d.1) && decisions.iter().all(|d| d.2));
    assert_ne!(allocations(), 0, "the counting allocator is installed");
    drop(std::hint::black_box(String::from("x")));
    assert!(allocations() > after);
}
