//! One connection: its deadlines from the connection table (`admit.rs`), a write
//! deadline on the socket, the TLS handshake when the web config asks for TLS, then
//! HTTP/1.1 with the header limits.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::admit::{Deadline, Ticket};
use super::App;

/// A connection's socket with a write deadline, telling its ticket when bytes arrive.
///
/// The deadline starts at the first write after the last completed flush and ends at the
/// next completed flush: hyper flushes after every piece of a response it buffers (at
/// most a few body frames), so a client that stops reading, or reads a trickle, has
/// `timeout` to take each piece. Then the write fails and the connection closes.
///
/// Bytes that arrive while a response is still being written (a pipelined request) are
/// reported once it is flushed: the next head's deadline starts then, so a response
/// that takes long to write is governed by the write deadline alone.
struct Guarded<I> {
    io: I,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    ticket: Arc<Ticket>,
    /// Bytes arrived while writes were pending.
    read_while_writing: bool,
}

impl<I> Guarded<I> {
    fn new(io: I, timeout: Duration, ticket: Arc<Ticket>) -> Self {
        Guarded {
            io,
            timeout,
            deadline: None,
            ticket,
            read_while_writing: false,
        }
    }

    fn arm(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
    }

    /// Turn a Pending write into a TimedOut error once the deadline has passed.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if res.is_ready() {
            return res;
        }
        let passed = self
            .deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
        if passed {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if this.deadline.is_some() {
                this.read_while_writing = true;
            } else {
                this.ticket.bytes_read();
            }
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.arm();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.arm();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(res, Poll::Ready(Ok(()))) {
            this.deadline = None;
            if std::mem::take(&mut this.read_while_writing) {
                this.ticket.bytes_read();
            }
        }
        this.check(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_shutdown(cx);
        this.check(cx, res)
    }
}

/// Serve HTTP/1.1 on one (plain or TLS) connection until it ends.
async fn serve_http<I>(
    io: I,
    app: Arc<App>,
    watcher: Watcher,
    peer: SocketAddr,
    ticket: Arc<Ticket>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = app.limits.clone();
    let svc = service_fn(move |req| {
        let (app, ticket) = (app.clone(), ticket.clone());
        async move {
            ticket.request_started();
            let mut resp = app.respond(req, peer.ip()).await;
            resp.body_mut().request = Some(ticket.request_guard());
            Ok::<_, Infallible>(resp)
        }
    });
    // No hyper header timeout: the connection table's deadlines (Opening, Idle,
    // Reading) cover the first byte, idle keep-alive and the head.
    let conn = http1::Builder::new()
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        // hyper panics below its minimum (8 KiB); never pass less.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024))
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The TLS handshake when the web config (as it is now) has TLS, then HTTP.
async fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    watcher: Watcher,
    ticket: Arc<Ticket>,
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
    let io = Guarded::new(stream, app.limits.write_timeout, ticket.clone());
    match tls {
        None => serve_http(io, app, watcher, peer, ticket).await,
        Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(io).await {
            Ok(s) => serve_http(s, app, watcher, peer, ticket).await,
            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        },
    }
}

/// One admitted connection, served until it ends, misses a deadline of its phase, or is
/// evicted to make room.
pub(super) async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    watcher: Watcher,
    ticket: Ticket,
) {
    let ticket = Arc::new(ticket);
    let work = serve(stream, peer, app, watcher, ticket.clone());
    tokio::pin!(work);
    loop {
        let until = match ticket.deadline() {
            Deadline::Evicted => {
                tracing::debug!(%peer, "connection closed to make room for a new one");
                return;
            }
            Deadline::At(t) => Some(t),
            Deadline::None => None,
        };
        let expired = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut work => return,
            _ = ticket.signal.wake.notified() => {}
            _ = expired => {
                // Closed unless the phase moved on meanwhile (a new deadline, or none).
                if until.is_some_and(|t| ticket.deadline() == Deadline::At(t)) {
                    tracing::debug!(%peer, "connection closed: no request head in time, or idle too long");
                    return;
                }
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
        let table = super::super::admit::ConnTable::new(&super::super::Limits::default());
        let ticket = Arc::new(table.admit(addr.ip(), Instant::now()).unwrap());
        let mut g = Guarded::new(server, Duration::from_millis(300), ticket);
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
