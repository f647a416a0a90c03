//! One connection: a write-stall deadline on the socket, the TLS handshake when the
//! web config asks for TLS, then HTTP/1.1 with the header limits.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::App;

/// A connection's socket with a write-stall deadline: a write or flush that makes no
/// progress for `timeout` fails, so a client that stops reading cannot hold its slot.
struct StallGuard<I> {
    io: I,
    timeout: Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> StallGuard<I> {
    fn new(io: I, timeout: Duration) -> Self {
        StallGuard {
            io,
            timeout,
            stalled_since: None,
        }
    }

    /// Turn a Pending write into a TimedOut error once the deadline passes.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match res {
            Poll::Ready(r) => {
                self.stalled_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallGuard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallGuard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.check(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_shutdown(cx);
        this.check(cx, res)
    }
}

/// Serve HTTP/1.1 on one (plain or TLS) connection until it ends.
async fn serve_http<I>(io: I, app: Arc<App>, watcher: Watcher, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = app.limits.clone();
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.respond(req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        // hyper panics below its minimum; never pass less.
        .max_buf_size((limits.max_header_bytes * 4).max(64 * 1024))
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// One accepted connection: TLS handshake when the web config (as it is now) has TLS,
/// then HTTP.
pub(super) async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    watcher: Watcher,
) {
    let tls = match app.web.clone() {
        None => None,
        Some(src) => match tokio::task::spawn_blocking(move || src.current()).await {
            Ok(cfg) => cfg.tls(),
            Err(e) => {
                // Fail closed: never fall back to plain HTTP.
                tracing::error!(%peer, error = %e, "reading the web config failed; dropping the connection");
                return;
            }
        },
    };
    let io = StallGuard::new(stream, app.limits.write_stall_timeout);
    match tls {
        None => serve_http(io, app, watcher, peer).await,
        Some(cfg) => {
            let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(io);
            match tokio::time::timeout(app.limits.tls_handshake_timeout, accept).await {
                Ok(Ok(s)) => serve_http(s, app, watcher, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::net::TcpListener;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_cut_off() {
        // A socket pair whose reader never reads: writes stall once the buffers fill.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = l.accept().await.unwrap();
        let mut g = StallGuard::new(server, Duration::from_millis(300));
        let buf = vec![0u8; 1 << 20];
        let t0 = Instant::now();
        let err = loop {
            let r = std::future::poll_fn(|cx| Pin::new(&mut g).poll_write(cx, &buf)).await;
            match r {
                Ok(_) => assert!(t0.elapsed() < Duration::from_secs(30), "never stalled"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
