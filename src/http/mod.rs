//! The HTTP server: `/metrics` (or `--web.telemetry-path`), a landing page at `/`,
//! `/healthz` and `/readyz`, over HTTP/1.1, in TLS and behind basic auth when the web
//! config file asks for it (see [`webconfig`]).
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

mod auth;
mod body;
mod conn;
pub(crate) mod listen;
mod tls;
pub(crate) mod webconfig;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, VARY,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Format;
use crate::sampler::Shared;

use body::{accepts_gzip, Body, GzipCache};
use conn::connection;
use webconfig::{WebConfig, WebConfigSource};

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

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
    use std::net::{SocketAddr, TcpStream};
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
}
