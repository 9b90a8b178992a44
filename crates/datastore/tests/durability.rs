//! An acknowledged write survives `kill -9`.
//!
//! The test binary runs itself again as a child (`durability_child`, selected with `--exact
//! --ignored`, with the database path in an environment variable). The child creates entries
//! in a loop and prints each id only after `create_entry` returned, i.e. after the commit. The
//! parent reads some ids, SIGKILLs the child in the middle of its loop, reopens the file and
//! checks that every printed id is there and that the database is intact.

// Test helpers outside #[test] functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sigil_datastore::{EntrySpec, OpenOptions, Selector, open};
use sigil_spiffe::SpiffeId;
use sqlx::{Connection, SqliteConnection};

const CHILD_ENV: &str = "SIGIL_DURABILITY_CHILD_DB";
const PREFIX: &str = "COMMITTED ";
/// How many acknowledged ids the parent waits for before killing the child.
const KILL_AFTER: usize = 40;
/// The child stops on its own after this many, so a lost parent cannot leave it running forever.
const CHILD_MAX: usize = 20_000;

fn spec(i: usize) -> EntrySpec {
    EntrySpec::new(
        SpiffeId::parse(&format!("spiffe://example.org/w{i}")).unwrap(),
        SpiffeId::parse("spiffe://example.org/agent").unwrap(),
        vec![Selector::parse(&format!("unix:uid:{i}")).unwrap()],
    )
}

#[tokio::test]
#[ignore = "the child half of acknowledged_writes_survive_sigkill, which runs it"]
async fn durability_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(&path, OpenOptions::default()).await.unwrap();
    let mut out = std::io::stdout();
    for i in 0..CHILD_MAX {
        let entry = store.create_entry(spec(i)).await.unwrap();
        writeln!(out, "{PREFIX}{}", entry.id).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix(PREFIX)
                && tx.send(id.to_owned()).is_err()
            {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(id) => acknowledged.push(id),
            Err(e) => {
                let _ = child.kill();
                panic!("child printed {} ids, then: {e}", acknowledged.len());
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child must die by SIGKILL, not finish: {status}"
        );
    }
    reader.join().unwrap();
    // Ids printed before the kill but not yet read were acknowledged too.
    acknowledged.extend(rx.try_iter());
    assert!(
        acknowledged.len() < CHILD_MAX,
        "the child was killed mid-loop"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let path = db.to_str().unwrap();
        let store = open(path, OpenOptions::default())
            .await
            .expect("reopen after kill -9");
        for id in &acknowledged {
            assert!(
                store.get_entry(id).await.unwrap().is_some(),
                "acknowledged entry {id} lost after kill -9"
            );
        }
        let count = store.count_entries().await.unwrap();
        eprintln!(
            "kill -9 after {} acknowledged writes; {count} entries found",
            acknowledged.len()
        );
        assert!(
            count as usize >= acknowledged.len(),
            "{count} < {}",
            acknowledged.len()
        );
        store.close().await;

        let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        conn.close().await.unwrap();
    });
}
