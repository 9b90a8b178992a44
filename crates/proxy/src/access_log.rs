//! One JSON line per HTTP request or TCP connection, written off the data path: the request
//! task hands the line to a bounded queue; a writer task does the IO. When the queue is full
//! (a stalled disk), lines are dropped and counted rather than slowing traffic.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::config::AccessLogTarget;

/// Lines waiting to be written at most.
const QUEUE: usize = 4096;

/// The access log handle (cheap to clone).
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> Self {
        AccessLog {
            tx: None,
            dropped: Arc::default(),
        }
    }

    /// Starts the writer for `target`.
    pub fn start(target: &AccessLogTarget) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(Self::off()),
            AccessLogTarget::Stderr => Box::new(std::io::stderr()),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.write_all(b"\n");
                    if rx.is_empty() {
                        let _ = out.flush();
                    }
                }
            })?;
        Ok(AccessLog {
            tx: Some(tx),
            dropped: Arc::default(),
        })
    }

    /// Queues one entry (a JSON object).
    pub fn write(&self, entry: serde_json::Value) {
        if let Some(tx) = &self.tx
            && tx.try_send(entry.to_string()).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
