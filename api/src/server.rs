//! The HTTP/1.1 server loop, with the bounds a public server needs: a cap on connections
//! served at once (more wait in the listen backlog, so running out of file descriptors never
//! stops `accept`), a header-read timeout from the first byte of a request to the end of its
//! headers, an idle timeout for a connection waiting for its next request, and (in the
//! router) a body-read timeout. In-flight requests finish on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::settings::ConnectionSettings;

/// What a connection is doing, shared by its socket, its service and its watcher.
#[derive(Debug)]
struct Activity {
    /// Since when a request's headers are being read (ms since `epoch`); 0 when not.
    reading_since: AtomicU64,
    /// Requests being answered.
    active: AtomicUsize,
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Self { reading_since: AtomicU64::new(0), active: AtomicUsize::new(0), epoch: Instant::now() }
    }

    fn now(&self) -> u64 {
        // At least 1: 0 means "not reading".
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Bytes arrived: with no request being answered, they start a request's headers.
    fn read(&self) {
        if self.active.load(Ordering::Acquire) == 0 {
            let _ = self.reading_since.compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// The headers are in: the request is handed to the router.
    fn begin(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.reading_since.store(0, Ordering::Release);
    }

    fn end(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    fn headers_overdue(&self, limit: Duration) -> bool {
        let since = self.reading_since.load(Ordering::Acquire);
        since != 0 && Duration::from_millis(self.now() - since) > limit
    }
}

/// A socket that tells its [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Descriptors kept free of connections: database pools, the listener, files.
const SPARE_DESCRIPTORS: u64 = 64;

/// The connections served at once: as configured, but under the open files limit, so
/// accepting never fails for want of a descriptor.
pub fn connection_cap(configured: u64) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let cap = match soft {
        Some(open_files) if open_files.saturating_sub(SPARE_DESCRIPTORS) < configured => {
            let lowered = open_files.saturating_sub(SPARE_DESCRIPTORS).max(1);
            tracing::warn!(
                configured,
                open_files,
                lowered,
                "max connections lowered under the open files limit"
            );
            lowered
        }
        _ => configured,
    };
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Serve `app` on `listener` until `shutdown` completes, then let in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(connection_cap(limits.max_connections)));
    let header_limit = Duration::from_secs(limits.header_read_timeout);
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's header timer runs from the moment a connection waits for a request (its first,
    // or the next on a kept-alive connection) to the end of that request's headers: the
    // idle timeout. The header-read timeout proper is watched below.
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.idle_timeout));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // pause, never stop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on an accepted connection");
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            let app = app.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                activity.begin();
                let activity = activity.clone();
                let app = app.clone();
                async move {
                    let response = app.oneshot(request.map(axum::body::Body::new)).await;
                    activity.end();
                    response
                }
            })
        };
        let io = TokioIo::new(Watched { inner: tcp, activity: activity.clone() });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    done = &mut connection => {
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = tick.tick() => if activity.headers_overdue(header_limit) {
                        // Dropping the connection closes the socket.
                        tracing::debug!(%addr, "request headers too slow: connection closed");
                        break;
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A request body past its deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] once its deadline passes, however slowly
/// or steadily it arrives.
struct Deadline {
    inner: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Deadline {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: the whole body must arrive within `limit` of the headers.
pub async fn body_deadline(
    limit: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let request = request
        .map(|inner| axum::body::Body::new(Deadline { inner, sleep: Box::pin(tokio::time::sleep(limit)) }));
    next.run(request).await
}

/// Whether an error (or one of its sources) is a body past its deadline.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}
