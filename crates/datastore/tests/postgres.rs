//! The conformance suite on PostgreSQL, plus outage behaviour.
//!
//! Each case creates a fresh database `sigil_test_<random>` through the admin URL
//! (`postgres://postgres@127.0.0.1:5432/postgres`, or env `SIGIL_TEST_POSTGRES_URL`) and drops
//! it afterwards, also when the case panics. When PostgreSQL is unreachable the cases print
//! "SKIPPED" and pass, except under CI (env `CI` set), where they fail.

// Test helpers outside #[test] functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestDb;
use rand::RngCore;
use sigil_datastore::{Backend, Error, OpenOptions};
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("SIGIL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{database}{query}", &base[..authority_end])
}

/// `url` with its host and port replaced by `host_port`.
fn with_host(url: &str, host_port: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let userinfo = rest[..authority_end]
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    format!(
        "{}{userinfo}{host_port}{}",
        &url[..after_scheme],
        &rest[authority_end..]
    )
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{}{user}:***@{host}{}",
                &url[..after_scheme],
                &rest[authority_end..]
            )
        }
        _ => url.to_owned(),
    }
}

/// An admin connection, or `None` (after saying so loudly) when PostgreSQL is not reachable
/// outside CI. Under CI an unreachable PostgreSQL fails the test.
async fn admin() -> Option<PgConnection> {
    let url = admin_url();
    let shown = redacted(&url);
    let attempt = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await;
    let error = match attempt {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5s".to_owned(),
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "PostgreSQL not reachable at {url} ({error}); CI requires it (set SIGIL_TEST_POSTGRES_URL)"
        );
    }
    eprintln!(
        "\n==================================================================\n\
         SKIPPED: PostgreSQL not reachable at {shown} ({error}).\n\
         Start PostgreSQL or set SIGIL_TEST_POSTGRES_URL to run these tests.\n\
         =================================================================="
    );
    None
}

/// Creates a fresh database, runs `case` on it, drops it (even if `case` panicked).
async fn with_fresh_database<F, Fut>(case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_fresh_database_created(case, "").await;
}

/// [`with_fresh_database`] with `create_options` appended to `CREATE DATABASE name`.
async fn with_fresh_database_created<F, Fut>(case: F, create_options: &str)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(mut admin) = admin().await else {
        return;
    };
    let mut suffix = [0u8; 6];
    rand::rng().fill_bytes(&mut suffix);
    let name = format!("sigil_test_{}", hex::encode(suffix));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} {create_options}"
    )))
    .execute(&mut admin)
    .await
    .expect("create test database");
    let outcome = tokio::spawn(case(with_database(&admin_url(), &name))).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_fresh_database(|url| case(TestDb::new(url))).await;
}

conformance_tests!(run);

/// Configuration listings are in byte order also when the database's default collation is a
/// natural-language one (where "a" < "B" < "b").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_order_ignores_the_database_collation() {
    let icu = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'";
    with_fresh_database_created(
        |url| common::config_list_filters_and_order(TestDb::new(url)),
        icu,
    )
    .await;
}

#[tokio::test]
async fn postgresql_url_form_and_backend() {
    with_fresh_database(|url| async move {
        let url = url.replacen("postgres://", "postgresql://", 1);
        let store = sigil_datastore::open(&url, common::options())
            .await
            .unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        store.close().await;
    })
    .await;
}

/// Needs no PostgreSQL: a closed port must fail fast with an actionable message.
#[tokio::test]
async fn refused_connection_says_what_to_check() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/sigil");
    let started = Instant::now();
    match sigil_datastore::open(&url, OpenOptions::default()).await {
        Err(Error::Unavailable { backend, detail }) => {
            assert_eq!(backend, Backend::Postgres);
            assert_eq!(
                detail,
                format!(
                    "cannot connect to PostgreSQL at 127.0.0.1:{port} (database sigil): connection \
                     refused — is PostgreSQL running? check --datastore"
                )
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("expected Unavailable, got a store"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn missing_database_is_named() {
    let Some(_) = admin().await else { return };
    let url = with_database(&admin_url(), "sigil_no_such_database");
    match sigil_datastore::open(&url, OpenOptions::default()).await {
        Err(Error::Unavailable { detail, .. }) => {
            assert!(
                detail.contains("database \"sigil_no_such_database\" does not exist"),
                "{detail}"
            );
            assert!(
                detail.contains("createdb sigil_no_such_database"),
                "{detail}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("expected Unavailable, got a store"),
    }
}

/// A TCP relay to PostgreSQL that can be cut (closing every connection) and restored on the same
/// port: the database "goes down" and "comes back" without touching the real server.
struct Relay {
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(addr: SocketAddr, upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind(addr).await.expect("bind relay");
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut down, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        Relay { addr, tasks }
    }

    /// Stops listening and drops every relayed connection.
    async fn cut(mut self) -> SocketAddr {
        self.tasks.shutdown().await;
        self.addr
    }
}

#[tokio::test]
async fn outage_returns_unavailable_and_recovers() {
    with_fresh_database(|url| async move {
        let upstream: SocketAddr = {
            let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            tokio::net::lookup_host((opts.get_host(), opts.get_port()))
                .await
                .unwrap()
                .next()
                .unwrap()
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), upstream).await;
        let relayed = with_host(&url, &relay.addr.to_string());
        let opts = OpenOptions {
            acquire_timeout: Duration::from_secs(1),
            ..common::options()
        };
        let store = sigil_datastore::open(&relayed, opts).await.unwrap();
        let e = store
            .create_entry(common::spec("w", "agent", &["t:1"]))
            .await
            .unwrap();

        let addr = relay.cut().await;
        let started = Instant::now();
        match store.get_entry(&e.id).await {
            Err(Error::Unavailable {
                backend: Backend::Postgres,
                detail,
            }) => {
                assert!(
                    detail.contains(&format!("PostgreSQL at {}", addr)),
                    "{detail}"
                );
            }
            other => panic!("expected Unavailable while down, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "fails fast: {:?}",
            started.elapsed()
        );
        assert!(matches!(
            store
                .create_entry(common::spec("w2", "agent", &["t:1"]))
                .await,
            Err(Error::Unavailable { .. })
        ));

        let relay = Relay::start(addr, upstream).await;
        assert_eq!(
            store.get_entry(&e.id).await.unwrap(),
            Some(e.clone()),
            "works again"
        );
        store
            .create_entry(common::spec("w2", "agent", &["t:1"]))
            .await
            .unwrap();
        assert_eq!(store.count_entries().await.unwrap(), 2);
        store.close().await;
        relay.cut().await;
    })
    .await;
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_host("postgres://u:p@localhost/db", "127.0.0.1:9"),
        "postgres://u:p@127.0.0.1:9/db"
    );
    assert_eq!(
        with_host("postgres://h:5432/db?x=1", "127.0.0.1:9"),
        "postgres://127.0.0.1:9/db?x=1"
    );
}
