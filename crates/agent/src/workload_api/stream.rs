//! The push loop behind every server-streaming RPC.
//!
//! One task per stream. It waits for a cache change, an SVID expiry, the client going away
//! or agent shutdown; then waits for room in a one-slot channel; then recomputes the caller's
//! view from the *newest* snapshot and sends it only if it differs from the last message
//! sent. Because every message is the complete state, a client that does not read simply
//! receives the latest state later: intermediate states are skipped, never queued, so memory
//! per stream is bounded (one message in the channel, one in transit).
//!
//! The task ends when the client's stream is dropped (the channel closes), when the view turns
//! into an error (the status is the stream's last item), or on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{Instrument, Span, debug, warn};

use super::views::View;
use crate::cache::{CacheRx, CacheState};

/// Messages that may wait for a slow reader; every message is the full state, so one is
/// enough.
const STREAM_BUFFER: usize = 1;

/// Counters shared by all streams of one [`super::WorkloadApi`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    live: AtomicUsize,
    sent: AtomicU64,
}

impl Counters {
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// Counts a stream as live until dropped (the task owns it, so it drops when the task ends).
struct LiveGuard(Arc<Counters>);

impl LiveGuard {
    fn new(c: Arc<Counters>) -> Self {
        c.live.fetch_add(1, Ordering::Relaxed);
        LiveGuard(c)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unix time in milliseconds from the system clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix time in seconds from the system clock.
pub(crate) fn now_secs() -> i64 {
    now_ms() / 1000
}

/// How long until `not_after` (unix seconds) has passed.
fn until_expiry(not_after: i64) -> Duration {
    let ms = not_after.saturating_mul(1000).saturating_sub(now_ms());
    // A few ms past the second boundary, so the recomputation sees the SVID as expired.
    Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 5)
}

/// Starts the push task for one stream whose first view was already computed (and was not an
/// error), and returns the stream tonic serves.
pub(crate) fn spawn<M, F>(
    mut cache: CacheRx,
    mut closing: watch::Receiver<bool>,
    first: View<M>,
    compute: F,
    counters: Arc<Counters>,
    span: Span,
) -> ReceiverStream<Result<M, Status>>
where
    M: Clone + PartialEq + Send + 'static,
    F: Fn(&CacheState, i64) -> Result<View<M>, Status> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let guard = LiveGuard::new(counters.clone());
    // The channel is new and has a free slot, so this cannot fail.
    if tx.try_send(Ok(first.msg.clone())).is_ok() {
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }
    log_dropped_hints(&first);
    let mut last = first.msg;
    let mut expires = first.expires;
    // `cache` has seen the snapshot `first` came from; a newer one makes `changed()` fire at
    // once, and is compared and sent if it differs.
    let task = async move {
        let _guard = guard;
        loop {
            let expiry = expires.map(until_expiry);
            tokio::select! {
                biased;
                () = tx.closed() => {
                    debug!("client went away; stream task ends");
                    return;
                }
                _ = closing.wait_for(|c| *c) => {
                    let _ = tx.try_send(Err(Status::unavailable("the agent is shutting down")));
                    return;
                }
                changed = cache.changed() => {
                    if changed.is_err() {
                        let _ = tx.try_send(Err(Status::unavailable("the agent's cache was closed")));
                        return;
                    }
                }
                () = tokio::time::sleep(expiry.unwrap_or_default()), if expiry.is_some() => {
                    debug!("an SVID in the last message expired; recomputing");
                }
            }
            // Wait until the client has room, so what we compute next is the newest state.
            let permit = tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => return,
                p = tx.reserve() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let state = cache.borrow_and_update().clone();
            match compute(&state, now_secs()) {
                Err(status) => {
                    debug!(code = ?status.code(), "stream ends: {}", status.message());
                    permit.send(Err(status));
                    return;
                }
                Ok(view) => {
                    expires = view.expires;
                    if view.msg != last {
                        log_dropped_hints(&view);
                        permit.send(Ok(view.msg.clone()));
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                        last = view.msg;
                    }
                }
            }
        }
    };
    tokio::spawn(task.instrument(span));
    ReceiverStream::new(rx)
}

fn log_dropped_hints<M>(view: &View<M>) {
    for (entry_id, hint) in &view.dropped_hints {
        warn!(
            entry_id = %entry_id,
            hint = %hint,
            "entry left out of the response: another entry for this workload has the same hint"
        );
    }
}
