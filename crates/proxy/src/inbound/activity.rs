//! Per-connection byte counts and timers for HTTP connections: a request head must complete
//! within the header timeout once its first byte arrived (slowloris), and a connection with no
//! request in flight is closed after the idle timeout. hyper's own header timer also runs
//! while a keep-alive connection waits between requests, which would make the header timeout
//! an idle timeout; this tracker keeps the two apart.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

/// Shared between the IO wrapper, the request handler and the connection's watchdog.
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read, or of the last request end.
    last_ms: AtomicU64,
    /// When the first byte of a not yet complete request head arrived (`NONE`: no head).
    head_since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether bytes between requests start a head (HTTP/1; not HTTP/2, whose pings and
    /// window updates flow while idle).
    track_heads: bool,
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    changed: Notify,
}

/// What the watchdog should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing yet; look again at this instant (or when notified).
    At(Instant),
    /// A request head took longer than the header timeout.
    Header,
    /// No request for the idle timeout.
    Idle,
}

impl Activity {
    pub fn new(track_heads: bool) -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            track_heads,
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn on_read(&self, n: usize) {
        self.on_read_at(n, self.now_ms());
    }

    fn on_read_at(&self, n: usize, now: u64) {
        self.rx.fetch_add(n as u64, Ordering::Relaxed);
        self.last_ms.store(now, Ordering::Relaxed);
        if self.track_heads
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self
                .head_since_ms
                .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request head is complete.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NONE, Ordering::Relaxed);
    }

    /// Its response has ended (or was abandoned).
    pub fn request_ended(&self) {
        self.ended_at(self.now_ms());
    }

    fn ended_at(&self, now: u64) {
        self.last_ms.store(now, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether a timer has run out, else when to look again.
    pub fn check(&self, header: Duration, idle: Duration) -> Expiry {
        self.check_at(header, idle, self.now_ms())
    }

    fn check_at(&self, header: Duration, idle: Duration, now: u64) -> Expiry {
        let at = |ms: u64| self.start + Duration::from_millis(ms);
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Expiry::At(at(now) + idle);
        }
        let head = self.head_since_ms.load(Ordering::Relaxed);
        if head != NONE {
            let deadline = head.saturating_add(header.as_millis() as u64);
            return if now >= deadline {
                Expiry::Header
            } else {
                Expiry::At(at(deadline))
            };
        }
        let deadline = self
            .last_ms
            .load(Ordering::Relaxed)
            .saturating_add(idle.as_millis() as u64);
        if now >= deadline {
            Expiry::Idle
        } else {
            Expiry::At(at(deadline))
        }
    }

    /// Resolves when a head starts (the deadline may have moved earlier).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// A stream that reports its reads and writes to an [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.on_read(n);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, b);
        if let Poll::Ready(Ok(n)) = r {
            self.activity.tx.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, b);
        if let Poll::Ready(Ok(n)) = r {
            self.activity.tx.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_idle_have_their_own_clocks() {
        let (h, i) = (Duration::from_secs(2), Duration::from_secs(10));
        let a = Activity::new(true);
        let check = |now_s: u64| a.check_at(h, i, now_s * 1000);
        assert!(matches!(check(0), Expiry::At(_)));
        a.on_read_at(10, 5000); // a head starts at 5 s
        assert!(matches!(check(6), Expiry::At(_)));
        assert_eq!(check(8), Expiry::Header);
        a.request_started();
        assert!(matches!(check(60), Expiry::At(_)), "in flight: no timeout");
        a.ended_at(60_000);
        assert!(matches!(check(69), Expiry::At(_)));
        assert_eq!(check(71), Expiry::Idle);
        // HTTP/2: bytes between requests do not start a head.
        let b = Activity::new(false);
        b.on_read_at(9, 1000);
        assert!(matches!(b.check_at(h, i, 5000), Expiry::At(_)));
        assert_eq!(b.check_at(h, i, 11_001), Expiry::Idle);
    }
}
