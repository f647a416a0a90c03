//! The HTTP server: `/metrics` (or `--web.telemetry-path`), a landing page at `/`,
//! `/healthz` and `/readyz`, over HTTP/1.1, in TLS and behind basic auth when the web
//! config file asks for it (see [`crate::webconfig`]).
//!
//! Only GET and HEAD on those paths; everything else gets 404 or 405. Every limit that
//! keeps a hostile client from holding the server lives in [`Limits`]: connections
//! served at once, the time to send request headers (which also bounds idle keep-alive
//! connections, so a slowloris client loses its slot), the TLS handshake time, how long
//! a client may stop reading a response, and the request header size (431 beyond).
//! `--web.max-requests` bounds the scrapes of the metrics path in flight (503 beyond).
//!
//! The listener and the shutdown future are passed in, so tests bind port 0 and stop
//! the server themselves.

pub mod webconfig;

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::webconfig::{WebConfig, WebConfigSource};
use crate::metrics::Format;
use crate::sampler::{Exposition, Shared};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Largest body frame handed to hyper: a response is sent in pieces, so a scrape slot is
/// held until nearly all of it has been written to the client.
const CHUNK: usize = 16 * 1024;

/// What one client may hold, and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time to send a request's headers, counted from when the server starts waiting
    /// for them: it also closes keep-alive connections idle that long.
    pub header_read_timeout: Duration,
    /// Time to complete a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// How long a write may make no progress (a client that stopped reading).
    pub write_stall_timeout: Duration,
    /// Request line plus headers, in bytes; more gets 431.
    pub max_header_bytes: usize,
    /// Number of request headers; more gets 431.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// What the server needs to answer requests.
#[derive(Debug)]
pub struct App {
    pub shared: Arc<Shared>,
    pub telemetry_path: String,
    /// The web config file, re-read per connection and request; None: plain HTTP, no auth.
    pub web: Option<Arc<WebConfigSource>>,
    pub limits: Limits,
    /// Scrapes of the metrics path in flight (`--web.max-requests`); None: no limit.
    scrape_slots: Option<Arc<Semaphore>>,
    gzip: GzipCache,
}

/// A response body: bytes handed out in frames of at most [`CHUNK`], holding a scrape
/// slot (when it has one) until the last frame is taken.
#[derive(Debug)]
pub struct Body {
    rest: Bytes,
    slot: Option<OwnedSemaphorePermit>,
}

impl Body {
    fn new(b: impl Into<Bytes>) -> Self {
        Body {
            rest: b.into(),
            slot: None,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            this.slot = None;
            return Poll::Ready(None);
        }
        let n = this.rest.len().min(CHUNK);
        let chunk = this.rest.split_to(n);
        if this.rest.is_empty() {
            this.slot = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

type Resp = Response<Body>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn unauthorized() -> Resp {
    let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    r
}

/// Whether `Accept-Encoding` asks for gzip with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if !coding.eq_ignore_ascii_case("gzip") {
                return false;
            }
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .next()
                .map(|v| v.parse::<f32>().unwrap_or(0.0))
                .unwrap_or(1.0);
            q > 0.0
        })
}

fn gzip(body: &[u8]) -> std::io::Result<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    Ok(Bytes::from(enc.finish()?))
}

/// The gzipped body of the latest exposition, per format: compressed once per scan, not
/// once per scrape.
#[derive(Debug, Default)]
struct GzipCache {
    entries: Mutex<Vec<(Arc<Exposition>, Format, Bytes)>>,
}

impl GzipCache {
    fn get(&self, exp: &Arc<Exposition>, format: Format, plain: &Bytes) -> Option<Bytes> {
        let lookup = |entries: &Vec<(Arc<Exposition>, Format, Bytes)>| {
            entries
                .iter()
                .find(|(e, f, _)| Arc::ptr_eq(e, exp) && *f == format)
                .map(|(_, _, b)| b.clone())
        };
        let lock = || match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(b) = lookup(&lock()) {
            return Some(b);
        }
        // Compress outside the lock; two scrapes racing just compress twice.
        let z = match gzip(plain) {
            Ok(z) => z,
            Err(e) => {
                tracing::warn!(error = %e, "gzip failed; answering uncompressed");
                return None;
            }
        };
        let mut entries = lock();
        entries.retain(|(e, f, _)| Arc::ptr_eq(e, exp) && *f != format);
        entries.push((exp.clone(), format, z.clone()));
        Some(z)
    }
}

impl App {
    /// `max_requests`: scrapes of the metrics path in flight at once, 0 for no limit.
    pub fn new(
        shared: Arc<Shared>,
        telemetry_path: String,
        web: Option<Arc<WebConfigSource>>,
        max_requests: usize,
    ) -> Self {
        App {
            shared,
            telemetry_path,
            web,
            limits: Limits::default(),
            scrape_slots: (max_requests > 0).then(|| Arc::new(Semaphore::new(max_requests))),
            gzip: GzipCache::default(),
        }
    }

    /// The web config in force (re-read off the async workers). Err: it could not be
    /// obtained, and the request must fail closed.
    async fn web_config(&self) -> Result<Option<(Arc<WebConfigSource>, Arc<WebConfig>)>, ()> {
        let Some(src) = self.web.clone() else {
            return Ok(None);
        };
        let s = src.clone();
        match tokio::task::spawn_blocking(move || s.current()).await {
            Ok(cfg) => Ok(Some((src, cfg))),
            Err(e) => {
                tracing::error!(error = %e, "reading the web config failed");
                Err(())
            }
        }
    }

    /// Answer one request: basic auth when configured, then [`App::handle`], then the
    /// configured response headers. Never panics, never fails.
    pub async fn respond<B>(&self, req: Request<B>) -> Resp {
        let web = match self.web_config().await {
            Ok(w) => w,
            Err(()) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        };
        let mut resp = match &web {
            Some((src, cfg)) if !src.authorize(cfg, req.headers().get(AUTHORIZATION)).await => {
                unauthorized()
            }
            _ => self.handle(&req),
        };
        if let Some((_, cfg)) = &web {
            for (k, v) in cfg.headers() {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
        }
        resp
    }

    /// Route one (authorized) request. Never panics, never fails.
    pub fn handle<B>(&self, req: &Request<B>) -> Resp {
        let path = req.uri().path();
        let known =
            path == "/" || path == "/healthz" || path == "/readyz" || path == self.telemetry_path;
        if !known {
            return text(StatusCode::NOT_FOUND, "404 page not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if path == self.telemetry_path {
            return self.metrics(req.headers());
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => match self.shared.readiness() {
                Ok(()) => text(StatusCode::OK, "ok\n"),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            _ => {
                let mut r = Response::new(Body::new(landing_page(&self.telemetry_path)));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
        }
    }

    fn metrics(&self, headers: &HeaderMap) -> Resp {
        let slot = match &self.scrape_slots {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many scrapes in flight (--web.max-requests)\n",
                    )
                }
            },
            None => None,
        };
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let exp = self.shared.current();
        let plain = exp.body(format);
        let gz = if accepts_gzip(headers) {
            self.gzip.get(&exp, format, &plain)
        } else {
            None
        };
        let zipped = gz.is_some();
        let mut r = Response::new(Body {
            rest: gz.unwrap_or(plain),
            slot,
        });
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        if zipped {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    }
}

fn landing_page(telemetry_path: &str) -> String {
    let p = html_escape(telemetry_path);
    format!(
        "<!DOCTYPE html>\n<html><head><title>nsexporter</title></head><body>\n\
         <h1>nsexporter {}</h1>\n<p>Linux namespace exporter: host-namespace sharing, host-root containers and namespace capacity.</p>\n\
         <ul><li><a href=\"{p}\">Metrics</a></li><li><a href=\"/healthz\">Health</a></li><li><a href=\"/readyz\">Readiness</a></li></ul>\n\
         </body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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
async fn connection(
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

/// Serve until `shutdown` completes, then give in-flight requests a short grace.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.limits.max_connections.max(1)));
    if let Some(src) = &app.web {
        let s = src.clone();
        if let Ok(cfg) = tokio::task::spawn_blocking(move || s.current()).await {
            tracing::info!(
                file = %src.path().display(),
                tls = cfg.tls().is_some(),
                client_auth = cfg.client_auth(),
                basic_auth_users = cfg.basic_auth_users(),
                "web config loaded; re-read on every new connection"
            );
        }
    }
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not stop serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            connection(stream, peer, app, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn app() -> App {
        App::new(
            Shared::new(Duration::from_secs(15)),
            "/metrics".into(),
            None,
            0,
        )
    }

    fn req(method: &str, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn routes_and_methods() {
        let a = app();
        assert_eq!(a.handle(&req("GET", "/metrics")).status(), StatusCode::OK);
        assert_eq!(a.handle(&req("HEAD", "/metrics")).status(), StatusCode::OK);
        assert_eq!(a.handle(&req("GET", "/")).status(), StatusCode::OK);
        assert_eq!(a.handle(&req("GET", "/healthz")).status(), StatusCode::OK);
        assert_eq!(
            a.handle(&req("GET", "/readyz")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            a.handle(&req("GET", "/nope")).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            a.handle(&req("GET", "/metrics/extra")).status(),
            StatusCode::NOT_FOUND
        );
        let r = a.handle(&req("POST", "/metrics"));
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            a.handle(&req("DELETE", "/")).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn landing_page_escapes_path() {
        assert!(landing_page("/m\"<x>").contains("/m&quot;&lt;x&gt;"));
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip;q=0.5",
            "br;q=1.0, gzip",
            "gzip; q=1",
        ] {
            assert!(accepts_gzip(&h(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "gzip;q=0",
            "gzip;q=0.0",
            "deflate",
            "x-gzip2",
            "gzip;q=abc",
        ] {
            assert!(!accepts_gzip(&h(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn body_is_chunked_and_releases_its_slot_at_the_end() {
        use http_body_util::BodyExt;
        let sem = Arc::new(Semaphore::new(1));
        let data = Bytes::from(vec![7u8; CHUNK * 2 + 5]);
        let mut b = Body {
            rest: data.clone(),
            slot: Some(sem.clone().try_acquire_owned().unwrap()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut got = Vec::new();
        let mut frames = 0;
        rt.block_on(async {
            while let Some(f) = b.frame().await {
                assert_eq!(sem.available_permits(), usize::from(b.rest.is_empty()));
                got.extend_from_slice(&f.unwrap().into_data().unwrap());
                frames += 1;
            }
        });
        assert_eq!(frames, 3);
        assert_eq!(Bytes::from(got), data);
        assert_eq!(sem.available_permits(), 1);
    }

    /// A real server on loopback in this process, with the given app; returns its address.
    async fn start(app: App) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(run(l, Arc::new(app), async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn get_status(addr: SocketAddr, path: &str) -> u16 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_requests_answers_503_while_the_slots_are_taken() {
        let a = App::new(
            Shared::new(Duration::from_secs(15)),
            "/metrics".into(),
            None,
            1,
        );
        let slots = a.scrape_slots.clone().unwrap();
        let (addr, _stop) = start(a).await;
        // Hold the only slot, as a scrape still being sent would.
        let held = slots.clone().try_acquire_owned().unwrap();
        let s = tokio::task::spawn_blocking(move || {
            (get_status(addr, "/metrics"), get_status(addr, "/healthz"))
        })
        .await
        .unwrap();
        assert_eq!(s, (503, 200), "metrics over the limit, health unaffected");
        drop(held);
        let s = tokio::task::spawn_blocking(move || get_status(addr, "/metrics"))
            .await
            .unwrap();
        assert_eq!(s, 200);
        assert_eq!(slots.available_permits(), 1, "the slot is returned");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_header_senders_lose_their_slots() {
        let mut a = app();
        a.limits.max_connections = 3;
        a.limits.header_read_timeout = Duration::from_millis(800);
        let (addr, _stop) = start(a).await;
        let (closed, fresh) = tokio::task::spawn_blocking(move || {
            // Take every slot with clients that dribble their headers.
            let mut slow: Vec<TcpStream> = (0..3)
                .map(|_| {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
                    s
                })
                .collect();
            let t0 = Instant::now();
            // A fourth client waits in the accept queue, then is served once the slow
            // ones are cut off.
            let fresh = std::thread::spawn(move || {
                let status = get_status(addr, "/healthz");
                (status, t0.elapsed())
            });
            let mut closed = 0;
            for s in &mut slow {
                let _ = s.write_all(b"X-A: b\r\n");
            }
            for s in &mut slow {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 512];
                // hyper answers 408 or just closes; either way the read ends.
                match s.read(&mut buf) {
                    Ok(_) => closed += 1,
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
                    Err(_) => {}
                }
            }
            (closed, fresh.join().unwrap())
        })
        .await
        .unwrap();
        assert_eq!(closed, 3);
        assert_eq!(fresh.0, 200);
        assert!(
            fresh.1 < Duration::from_secs(4),
            "served after {:?}",
            fresh.1
        );
    }

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
