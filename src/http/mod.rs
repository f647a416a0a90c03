//! The HTTP server: `/metrics` (or `--web.telemetry-path`), a landing page at `/`,
//! `/healthz` and `/readyz`, over HTTP/1.1, in TLS and behind basic auth when the web
//! config file asks for it (see [`webconfig`]).
//!
//! Only GET and HEAD on those paths; everything else gets 404 or 405. Every limit that
//! keeps a hostile client from holding the server lives in [`Limits`], and is enforced
//! so that a legitimate scraper always gets through: connections in all (from the open
//! file limit) and per source address, eviction of connections that never completed a
//! request when full, deadlines for the first request head and between requests
//! (`admit.rs`), a write deadline for clients that stop reading (`conn.rs`), the request
//! header size (431 beyond), and a bounded, per-source fair pool for bcrypt checks
//! (`auth.rs`). `--web.max-requests` bounds the scrapes of the metrics path in flight,
//! a quarter of them per source address (503 beyond).
//!
//! The listener and the shutdown future are passed in, so tests bind port 0 and stop
//! the server themselves.
//!
//! Why one file of about 730 lines: about 430 of code, the rest its unit tests beside it.

mod admit;
mod auth;
mod body;
mod conn;
pub(crate) mod listen;
mod tls;
pub(crate) mod webconfig;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_ENCODING,
    CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::metrics::Format;
use crate::sampler::Shared;

use admit::{ConnTable, Refused, ScrapeSlots};
use body::{accepts_gzip, Body, GzipCache};
use conn::connection;
use webconfig::{WebConfig, WebConfigSource};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// File descriptors kept back from connections: the scanner's /proc reads (a few per
/// scan thread), the web config files, the listener, logging, the runtime's own.
pub const FD_HEADROOM: u64 = 256;

/// The most connections `--web.max-connections auto` allows, whatever the file limit:
/// memory. A held connection costs 15 KiB (idle) to 27 KiB (TLS, kept alive), measured
/// by `bench/connections.py`: this many take at most ~28 MiB, which with a 20k-process
/// node's 13 MiB stays within the chart's 64 MiB limit.
pub const AUTO_MAX_CONNECTIONS: usize = 1024;

/// What one client may hold, and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections held at once; when full, a new one evicts the oldest that has not
    /// completed a request (then the longest idle), or is closed.
    pub max_connections: usize,
    /// Connections one source address may hold; more are closed at once.
    pub max_connections_per_source: usize,
    /// From the accept (or from the first byte of a later request) to the complete
    /// request head, the TLS handshake included.
    pub header_timeout: Duration,
    /// How long a connection may wait between requests (keep-alive).
    pub idle_timeout: Duration,
    /// How long a piece of a response may take to be written (a client that stopped
    /// reading); shorter than any scrape interval.
    pub write_timeout: Duration,
    /// Request line plus headers, in bytes; more gets 431.
    pub max_header_bytes: usize,
    /// Number of request headers; more gets 431.
    pub max_headers: usize,
    /// Each connection's socket send buffer (the kernel doubles it for bookkeeping):
    /// enough to stream a scrape at full speed on a cluster network.
    pub send_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: AUTO_MAX_CONNECTIONS,
            max_connections_per_source: 64,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            send_buffer_bytes: 128 * 1024,
        }
    }
}

impl Limits {
    /// The limits for this process: `max_connections` as asked (None: `auto`), within
    /// what the open-file limit allows once raised to its hard limit (as Go programs
    /// do), less [`FD_HEADROOM`] and the `reserved` files others keep open (the
    /// scanner's mount tables). Raises RLIMIT_NOFILE; logs what it chose.
    pub fn for_this_process(max_connections: Option<usize>, reserved: usize) -> Self {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let nofile = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) => {
                if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                    hard
                } else {
                    soft
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
                1024
            }
        };
        let budget = usize::try_from(
            nofile
                .saturating_sub(FD_HEADROOM)
                .saturating_sub(reserved as u64)
                .max(16),
        )
        .unwrap_or(usize::MAX);
        let max = match max_connections {
            None => budget.min(AUTO_MAX_CONNECTIONS),
            Some(n) if n > budget => {
                tracing::warn!(
                    asked = n,
                    open_file_limit = nofile,
                    using = budget,
                    "--web.max-connections is above what the open-file limit allows"
                );
                budget
            }
            Some(n) => n,
        };
        let limits = Limits {
            max_connections: max,
            max_connections_per_source: Limits::default().max_connections_per_source.min(max),
            ..Limits::default()
        };
        tracing::info!(
            max_connections = limits.max_connections,
            per_address = limits.max_connections_per_source,
            open_file_limit = nofile,
            "connection limits"
        );
        limits
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
    scrape_slots: Option<Arc<ScrapeSlots>>,
    gzip: GzipCache,
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

impl App {
    /// `max_requests`: scrapes of the metrics path in flight at once, 0 for no limit.
    pub fn new(
        shared: Arc<Shared>,
        telemetry_path: String,
        web: Option<Arc<WebConfigSource>>,
        max_requests: usize,
        limits: Limits,
    ) -> Self {
        App {
            shared,
            telemetry_path,
            web,
            limits,
            scrape_slots: (max_requests > 0).then(|| ScrapeSlots::new(max_requests)),
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

    /// Answer one request from `client`: basic auth when configured, then
    /// [`App::handle`], then the configured response headers. Never panics, never fails.
    pub async fn respond<B>(&self, req: Request<B>, client: IpAddr) -> Resp {
        let web = match self.web_config().await {
            Ok(w) => w,
            Err(()) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        };
        let authorized = match &web {
            Some((src, cfg)) => {
                src.authorize(cfg, req.headers().get(AUTHORIZATION), client)
                    .await
            }
            None => true,
        };
        let mut resp = if authorized {
            self.handle(&req, client)
        } else {
            unauthorized()
        };
        if let Some((_, cfg)) = &web {
            for (k, v) in cfg.headers() {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
        }
        resp
    }

    /// Route one (authorized) request from `client`. Never panics, never fails.
    pub fn handle<B>(&self, req: &Request<B>, client: IpAddr) -> Resp {
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
            return self.metrics(req.headers(), client);
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

    fn metrics(&self, headers: &HeaderMap, client: IpAddr) -> Resp {
        let slot = match &self.scrape_slots {
            Some(s) => match s.try_acquire(client) {
                Ok(p) => Some(p),
                Err(why) => {
                    let msg = match why {
                        Refused::Full => {
                            "too many scrapes in flight (--web.max-requests)\n".to_string()
                        }
                        Refused::SourceFull => format!(
                            "too many scrapes in flight from your address (a quarter of --web.max-requests: {})\n",
                            s.per_source_max()
                        ),
                    };
                    // And close: the rest of a pipeline of requests is not answered.
                    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, msg);
                    r.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                    return r;
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
            request: None,
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

/// Serve until `shutdown` completes, then give in-flight requests a short grace.
/// Accepting never waits: every connection is admitted or closed at once (`admit.rs`).
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let table = ConnTable::new(&app.limits);
    // The kernel's accept queue holds connections until they are admitted or closed. A
    // flood fills the usual 1024 in a burst, and a scraper's SYN that finds it full
    // waits a second for its retransmission: take the system's maximum
    // (net.core.somaxconn, 4096 by default). Listening again only resizes the queue.
    if let Err(e) = nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::MAXCONN) {
        tracing::warn!(error = %e, "cannot enlarge the listen backlog");
    }
    if let Some(src) = &app.web {
        let s = src.clone();
        if let Ok(cfg) = tokio::task::spawn_blocking(move || s.current()).await {
            for w in cfg.warnings() {
                tracing::warn!(file = %src.path().display(), "{w}");
            }
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
        let ticket = match table.admit(peer.ip(), Instant::now()) {
            Ok(t) => t,
            // Closed at once: the client sees the connection end before any answer.
            Err(_) => continue,
        };
        // A fixed send buffer: left to autotuning, it grows to 4 MiB for a client that
        // never reads (tcp_wmem), so each such connection pins megabytes of kernel memory
        // and costs a burst of copying whenever it is opened or cut.
        if let Err(e) = nix::sys::socket::setsockopt(
            &stream,
            nix::sys::socket::sockopt::SndBuf,
            &app.limits.send_buffer_bytes,
        ) {
            tracing::debug!(%peer, error = %e, "cannot set the send buffer size");
        }
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(connection(stream, peer, app, watcher, ticket));
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
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn app_with(max_requests: usize, limits: Limits) -> App {
        App::new(
            Shared::new(Duration::from_secs(15)),
            "/metrics".into(),
            None,
            max_requests,
            limits,
        )
    }

    fn app() -> App {
        app_with(0, Limits::default())
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
        assert_eq!(
            a.handle(&req("GET", "/metrics"), LOCAL).status(),
            StatusCode::OK
        );
        assert_eq!(
            a.handle(&req("HEAD", "/metrics"), LOCAL).status(),
            StatusCode::OK
        );
        assert_eq!(a.handle(&req("GET", "/"), LOCAL).status(), StatusCode::OK);
        assert_eq!(
            a.handle(&req("GET", "/healthz"), LOCAL).status(),
            StatusCode::OK
        );
        assert_eq!(
            a.handle(&req("GET", "/readyz"), LOCAL).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            a.handle(&req("GET", "/nope"), LOCAL).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            a.handle(&req("GET", "/metrics/extra"), LOCAL).status(),
            StatusCode::NOT_FOUND
        );
        let r = a.handle(&req("POST", "/metrics"), LOCAL);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            a.handle(&req("DELETE", "/"), LOCAL).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn landing_page_escapes_path() {
        assert!(landing_page("/m\"<x>").contains("/m&quot;&lt;x&gt;"));
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

    /// A client socket from `from` (any 127/8 address) to `addr`.
    fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::new(from.parse().unwrap(), 0).into())
            .unwrap();
        s.connect(&addr.into()).unwrap();
        s.into()
    }

    /// The status of one request on a new connection from `from` (0: no answer).
    fn get_status_from(from: &str, addr: SocketAddr, path: &str) -> u16 {
        let mut s = connect_from(from, addr);
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

    fn get_status(addr: SocketAddr, path: &str) -> u16 {
        get_status_from("127.0.0.1", addr, path)
    }

    /// Whether the server closes `s` within `within` (reading and dropping anything it
    /// sends first, such as a 408).
    fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_requests_answers_503_while_the_slots_are_taken() {
        let a = app_with(1, Limits::default());
        let slots = a.scrape_slots.clone().unwrap();
        let (addr, _stop) = start(a).await;
        // Hold the only slot, as a scrape from elsewhere still being sent would.
        let held = slots.try_acquire("10.0.0.1".parse().unwrap()).unwrap();
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
        assert_eq!(slots.in_use(), 0, "the slot is returned");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_holds_at_most_a_quarter_of_the_scrape_slots() {
        let a = app_with(8, Limits::default());
        let slots = a.scrape_slots.clone().unwrap();
        let (addr, _stop) = start(a).await;
        // 127.0.0.1 holds its two (a quarter of 8), as stalled responses would.
        let held: Vec<_> = (0..2).map(|_| slots.try_acquire(LOCAL).unwrap()).collect();
        let s = tokio::task::spawn_blocking(move || {
            (
                get_status_from("127.0.0.1", addr, "/metrics"),
                get_status_from("127.0.0.2", addr, "/metrics"),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            s,
            (503, 200),
            "the holder is refused, another address served"
        );
        drop(held);
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_address_over_its_connection_limit_is_closed_at_once_and_others_are_served() {
        let limits = Limits {
            max_connections_per_source: 3,
            ..Limits::default()
        };
        let (addr, _stop) = start(app_with(0, limits)).await;
        let (fourth_closed, other) = tokio::task::spawn_blocking(move || {
            let _idle: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", addr)).collect();
            let mut fourth = connect_from("127.0.0.1", addr);
            let closed = closed_within(&mut fourth, Duration::from_secs(2));
            (closed, get_status_from("127.0.0.2", addr, "/healthz"))
        })
        .await
        .unwrap();
        assert!(
            fourth_closed,
            "the fourth connection from one address is closed"
        );
        assert_eq!(other, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_full_a_new_connection_evicts_the_oldest_one_without_a_request() {
        let limits = Limits {
            max_connections: 3,
            header_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let (addr, _stop) = start(app_with(0, limits)).await;
        let (closed, fresh, t) = tokio::task::spawn_blocking(move || {
            // Three clients from three addresses dribble a head, filling the server.
            let mut slow: Vec<TcpStream> = (1..=3)
                .map(|i| {
                    let mut s = connect_from(&format!("127.0.0.{i}"), addr);
                    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    s
                })
                .collect();
            // A fourth is served at once, long before any header deadline...
            let t0 = Instant::now();
            let fresh = get_status_from("127.0.0.4", addr, "/healthz");
            let t = t0.elapsed();
            // ...and the oldest dribbler paid for it; the others are still held.
            let closed: Vec<bool> = slow
                .iter_mut()
                .map(|s| closed_within(s, Duration::from_millis(300)))
                .collect();
            (closed, fresh, t)
        })
        .await
        .unwrap();
        assert_eq!(fresh, 200);
        assert!(t < Duration::from_secs(5), "served after {t:?}");
        assert_eq!(closed, [true, false, false]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_must_come_soon_after_connecting_but_a_kept_alive_connection_may_idle() {
        let limits = Limits {
            header_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(2500),
            ..Limits::default()
        };
        let (addr, _stop) = start(app_with(0, limits)).await;
        let (silent, dribble, idle_kept, idle_closed, slow_second) =
            tokio::task::spawn_blocking(move || {
                // Connected, nothing sent: closed at the header deadline.
                let mut silent = connect_from("127.0.0.1", addr);
                let t0 = Instant::now();
                assert!(closed_within(&mut silent, Duration::from_secs(5)));
                let silent = t0.elapsed();
                // Half a head: the same.
                let mut dribble = connect_from("127.0.0.1", addr);
                dribble.write_all(b"GET / HTTP/1.1\r\n").unwrap();
                let t0 = Instant::now();
                assert!(closed_within(&mut dribble, Duration::from_secs(5)));
                let dribble = t0.elapsed();
                // A request answered, then quiet: kept past the header deadline...
                let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
                let mut ka = connect_from("127.0.0.1", addr);
                ka.write_all(req).unwrap();
                let mut buf = [0u8; 512];
                ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                assert!(ka.read(&mut buf).unwrap() > 0);
                let t0 = Instant::now();
                let idle_kept = !closed_within(&mut ka, Duration::from_millis(1200));
                // ...and closed at the idle deadline.
                let idle_closed = closed_within(&mut ka, Duration::from_secs(5));
                let idle = t0.elapsed();
                // After a first request, a second head that starts and stalls gets the
                // short deadline from its first byte, not the idle one.
                let mut ka2 = connect_from("127.0.0.1", addr);
                ka2.write_all(req).unwrap();
                ka2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                assert!(ka2.read(&mut buf).unwrap() > 0);
                ka2.write_all(b"GET /").unwrap();
                let t0 = Instant::now();
                assert!(closed_within(&mut ka2, Duration::from_secs(5)));
                let slow_second = t0.elapsed();
                (silent, dribble, (idle_kept, idle), idle_closed, slow_second)
            })
            .await
            .unwrap();
        assert!(
            silent >= Duration::from_millis(400) && silent < Duration::from_secs(2),
            "{silent:?}"
        );
        assert!(
            dribble >= Duration::from_millis(400) && dribble < Duration::from_secs(2),
            "{dribble:?}"
        );
        assert!(
            idle_kept.0,
            "a kept-alive connection outlives the header deadline"
        );
        assert!(idle_closed, "and is closed after the idle time");
        assert!(
            idle_kept.1 >= Duration::from_secs(2),
            "idle closed after {:?}",
            idle_kept.1
        );
        assert!(slow_second < Duration::from_millis(1500), "{slow_second:?}");
    }
}
