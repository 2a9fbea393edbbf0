//! The HTTP/1 accept loop of every port moked serves: the intake's (`moked-intake` and the
//! all-in-one `moked`) and the workers' status port (`METRICS_PORT`). Built with the `http`
//! feature.
//!
//! `axum::serve` runs hyper without a timer, so hyper's header-read timeout never fires and a
//! client that sends half a header holds its socket (and a file descriptor) for ever; about a
//! thousand such sockets exhaust the usual 1,024 open-file limit and genuine webhooks time
//! out. This loop serves the same router with:
//!
//! * **A header-read timeout** (`HEADER_READ_TIMEOUT`, 10 s): a connection whose request head
//!   has not fully arrived in time is closed. hyper 1.x restarts the same timer when a
//!   kept-alive connection goes idle after a response (`proto/h1/conn.rs`: `idle()` sets
//!   `notify_read`, and the next `poll_read_head` arms the timer), so it is also the idle
//!   keep-alive timeout; there is no second one.
//! * **A cap on open connections** (`MAX_CONNECTIONS`, 512). At the cap, a new connection
//!   takes the place of the one that has waited longest without a request in progress (a
//!   half-sent header, or an idle keep-alive): a flood of slow sockets cannot make a genuine
//!   webhook queue behind it for several header timeouts (with 1,100 of them and a FIFO
//!   backlog that would be 2 × 10 s, past Twilio's 15 s). A connection is busy from the moment
//!   its request head is complete until its response body has been sent, and a busy one is
//!   never closed for another; only when every connection is busy does the loop stop
//!   accepting, and new connections wait in the kernel's listen backlog.
//! * **Accept errors without a busy loop**: `EMFILE`/`ENFILE` (out of file descriptors) close
//!   the longest-idle connection to free one and back off (10 ms, doubling to 1 s while the
//!   errors last); they are logged at most once per [`ACCEPT_ERROR_LOG_INTERVAL`], with how
//!   many there were. Per-connection errors (reset before accept) are ignored.
//! * **Graceful shutdown**: when `shutdown` resolves the listener is dropped, idle connections
//!   are closed and in-flight requests finish (hyper_util's `GracefulShutdown`); the caller
//!   bounds the wait (the intake's `SHUTDOWN_GRACE`).
//!
//! Each request carries [`axum::extract::ConnectInfo`] with the peer address, as
//! `into_make_service_with_connect_info` did, so the rate limits' client key is unchanged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The first back-off after a failed `accept`, doubled while failures last.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest back-off after a failed `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Failed accepts are logged at most once per this interval.
pub const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How the loop treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed for a request head, and for a kept-alive connection's idle wait.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// One open connection in the table.
#[derive(Debug)]
struct Entry {
    /// Requests in progress (0 or 1 on HTTP/1).
    busy: usize,
    /// When it last had no request in progress (accepted, or its last response sent).
    idle_since: Instant,
    /// Closes the connection when sent or dropped.
    close: Option<oneshot::Sender<()>>,
}

/// The open connections, and a wake-up for an accept loop waiting for room.
#[derive(Debug)]
struct Connections {
    max: usize,
    table: Mutex<Table>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

impl Connections {
    fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            table: Mutex::new(Table::default()),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the connection that has waited longest without a request in progress; false
    /// when every connection is busy.
    fn evict_idlest(table: &mut Table) -> bool {
        let victim = table
            .open
            .iter()
            .filter(|(_, e)| e.busy == 0)
            .min_by_key(|(id, e)| (e.idle_since, **id))
            .map(|(id, _)| *id);
        match victim.and_then(|id| table.open.remove(&id)) {
            Some(mut entry) => {
                if let Some(close) = entry.close.take() {
                    let _ = close.send(());
                }
                true
            }
            None => false,
        }
    }

    /// A place for a new connection: free, or made by closing the idlest one; `None` when
    /// every connection is busy.
    fn try_admit(self: &Arc<Self>) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut table = self.lock();
        if table.open.len() >= self.max && !Self::evict_idlest(&mut table) {
            return None;
        }
        let (close, closed) = oneshot::channel();
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(
            id,
            Entry {
                busy: 0,
                idle_since: Instant::now(),
                close: Some(close),
            },
        );
        Some((
            Slot {
                conns: Arc::clone(self),
                id,
            },
            closed,
        ))
    }

    /// Waits until a connection can be admitted.
    async fn admit(self: &Arc<Self>) -> (Slot, oneshot::Receiver<()>) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(admitted) = self.try_admit() {
                return admitted;
            }
            freed.await;
        }
    }

    /// Closes the idlest connection to free a file descriptor (after EMFILE/ENFILE).
    fn shed(&self) -> bool {
        Self::evict_idlest(&mut self.lock())
    }

    fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// A connection's place in the table; leaving it frees the place.
#[derive(Debug)]
struct Slot {
    conns: Arc<Connections>,
    id: u64,
}

impl Slot {
    /// Marks a request in progress until the guard is dropped.
    fn busy(&self) -> Busy {
        if let Some(entry) = self.conns.lock().open.get_mut(&self.id) {
            entry.busy += 1;
        }
        Busy {
            conns: Arc::clone(&self.conns),
            id: self.id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().open.remove(&self.id);
        self.conns.freed.notify_one();
    }
}

/// A request in progress on a connection (held until its response body is sent).
#[derive(Debug)]
struct Busy {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(entry) = self.conns.lock().open.get_mut(&self.id) {
            entry.busy = entry.busy.saturating_sub(1);
            if entry.busy == 0 {
                entry.idle_since = Instant::now();
            }
        }
    }
}

/// A response body that keeps its connection marked busy until it is sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an accept error is about one connection (gone before we took it) rather than the
/// process (out of descriptors, memory).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves, then waits for the
/// open connections to finish (unbounded: the caller applies the grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let conns = Connections::new(limits.max_connections);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    // Failed accepts not yet logged, and when the last line was.
    let mut failures: u64 = 0;
    let mut logged: Option<Instant> = None;
    loop {
        // Room first: while every connection is busy, new ones wait in the listen backlog.
        let (slot, closed) = tokio::select! {
            admitted = conns.admit() => admitted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => return finish(listener, graceful).await,
            };
            match accepted {
                Ok(accepted) => break accepted,
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    failures += 1;
                    if logged.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_INTERVAL) {
                        tracing::error!(
                            error = %e,
                            failures,
                            open = conns.open(),
                            "accept failed (out of file descriptors?); closing the idlest \
                             connection and backing off"
                        );
                        logged = Some(Instant::now());
                        failures = 0;
                    }
                    conns.shed();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => return finish(listener, graceful).await,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        spawn_connection(&http, &graceful, router.clone(), stream, peer, slot, closed);
    }
    finish(listener, graceful).await;
}

/// Stops accepting and waits for the open connections (idle ones close at once).
async fn finish(listener: TcpListener, graceful: GracefulShutdown) {
    drop(listener);
    graceful.shutdown().await;
}

fn spawn_connection(
    http: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    router: Router,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    closed: oneshot::Receiver<()>,
) {
    // Small answers go out at once instead of waiting for a delayed ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let slot = Arc::new(slot);
    let service = hyper::service::service_fn({
        let slot = Arc::clone(&slot);
        move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = slot.busy();
            let answer = router.clone().oneshot(req.map(Body::new));
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|inner| Tracked { inner, _busy: busy }))
            }
        }
    });
    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        tokio::select! {
            served = connection => {
                if let Err(error) = served {
                    // Header timeouts, resets and malformed requests: the client's business.
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            // Closed (or the table dropped it) to make room for a new connection.
            _ = closed => tracing::debug!(%peer, "idle connection closed to make room"),
        }
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_idlest_connection_makes_room_and_busy_ones_never_do() {
        let conns = Connections::new(2);
        let (first, mut first_closed) = conns.try_admit().expect("room");
        let (second, mut second_closed) = conns.try_admit().expect("room");
        let busy = second.busy();
        // Full: the idle first one is closed for the third.
        let (third, _third_closed) = conns.try_admit().expect("made room");
        assert!(first_closed.try_recv().is_ok(), "the idlest was closed");
        assert!(second_closed.try_recv().is_err(), "the busy one stays");
        drop(first);
        assert_eq!(conns.open(), 2);
        // The third is idle and makes room in turn; then only the busy one is left.
        let third_busy = third.busy();
        assert!(conns.try_admit().is_none(), "every connection is busy");
        drop(third_busy);
        drop(busy);
        drop(third);
        assert_eq!(conns.open(), 1);
        assert!(conns.try_admit().is_some());
        drop(second);
    }

    #[tokio::test]
    async fn a_freed_place_wakes_a_waiting_accept() {
        let conns = Connections::new(1);
        let (only, _closed) = conns.try_admit().expect("room");
        let busy = only.busy();
        let waiting = tokio::spawn({
            let conns = Arc::clone(&conns);
            async move { conns.admit().await.0.id }
        });
        // Let the waiting accept find no room and park before the place is freed.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        drop(busy);
        drop(only);
        let id = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(id, 1);
    }
}
