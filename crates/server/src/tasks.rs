//! The lifecycle both runtimes (server, agent) share: a set of serving tasks and one shutdown
//! signal they all watch.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown waits for each task to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Tasks {
    /// What the tasks were started for, in "… task panicked" errors (`server`, `agent`).
    what: &'static str,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Tasks {
    pub fn new(what: &'static str) -> Self {
        Tasks {
            what,
            shutdown: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// A receiver that turns `true` on shutdown.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn spawn(&mut self, f: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.tasks.push(tokio::spawn(f));
    }

    /// Waits until a task fails (its error is returned) or all have ended.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        while !self.tasks.is_empty() {
            let (r, _, rest) = futures::future::select_all(std::mem::take(&mut self.tasks)).await;
            self.tasks = rest;
            r.with_context(|| format!("{} task panicked", self.what))??;
        }
        Ok(())
    }

    /// Signals shutdown and waits (bounded) for every task.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(STOP_GRACE, t).await;
        }
    }
}
