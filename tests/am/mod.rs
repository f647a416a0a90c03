//! Test helpers for the alerting sidecar: a real Alertmanager on loopback (Debian's
//! `prometheus-alertmanager`, its own port and storage directory, stopped and restarted
//! at will), a tiny Alertmanager-shaped HTTP server whose answers the test chooses, and
//! polling with deadlines.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::common::free_port;
use crate::common::require_tool;

/// Poll `f` every 100 ms until it gives `Some`, or panic with `what` and the last
/// thing `f` saw once `deadline` has passed.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > deadline => {
                panic!("{what}: not within {deadline:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// How a test talks to an Alertmanager's own API (plain, or TLS with basic auth).
#[derive(Clone, Debug, Default)]
pub struct ApiAccess {
    /// CA file, client certificate and key for TLS.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    pub basic_auth: Option<(String, String)>,
}

/// A real Alertmanager, killed (by its PID) on drop.
pub struct Alertmanager {
    pub port: u16,
    pub dir: PathBuf,
    storage: PathBuf,
    web_config: Option<PathBuf>,
    access: ApiAccess,
    child: Option<Child>,
    log: PathBuf,
}

impl Alertmanager {
    /// Start one in `dir` (config, storage and log live there).
    pub fn start(dir: &Path, name: &str) -> Alertmanager {
        Self::start_with(dir, name, None, ApiAccess::default())
    }

    pub fn start_with(
        dir: &Path,
        name: &str,
        web_config: Option<PathBuf>,
        access: ApiAccess,
    ) -> Alertmanager {
        Self::start_configured(dir, name, "", web_config, access)
    }

    /// With `extra` appended to its config file (e.g. `inhibit_rules`).
    pub fn start_configured(
        dir: &Path,
        name: &str,
        extra: &str,
        web_config: Option<PathBuf>,
        access: ApiAccess,
    ) -> Alertmanager {
        require_tool("prometheus-alertmanager");
        require_tool("curl");
        let dir = dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("alertmanager.yml"),
            format!("route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: blackhole\n{extra}"),
        )
        .unwrap();
        let mut am = Alertmanager {
            port: free_port(),
            storage: dir.join("data"),
            log: dir.join("alertmanager.log"),
            dir,
            web_config,
            access,
            child: None,
        };
        am.launch();
        am
    }

    pub fn url(&self) -> String {
        let scheme = if self.access.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(require_tool("prometheus-alertmanager"));
        cmd.args([
            format!(
                "--config.file={}",
                self.dir.join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", self.storage.display()),
            format!("--web.listen-address=127.0.0.1:{}", self.port),
            "--cluster.listen-address=".to_string(),
        ]);
        if let Some(w) = &self.web_config {
            cmd.arg(format!("--web.config.file={}", w.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start prometheus-alertmanager");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("alertmanager exited ({status})\n{}", self.log_tail());
            }
            if matches!(self.get("/-/ready"), Ok((200, _))) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "alertmanager not ready\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stop it (SIGKILL, by PID) and reap it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port; `wipe` deletes its storage first.
    pub fn restart(&mut self, wipe: bool) {
        self.stop();
        if wipe {
            let _ = fs::remove_dir_all(&self.storage);
        }
        self.launch();
    }

    /// GET on its own API: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.url());
        let mut cmd = Command::new(require_tool("curl"));
        cmd.args(["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"]);
        if let Some((ca, cert, key)) = &self.access.tls {
            cmd.arg("--cacert")
                .arg(ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        if let Some((u, p)) = &self.access.basic_auth {
            cmd.arg("-u").arg(format!("{u}:{p}"));
        }
        let out = cmd.arg(&url).output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').ok_or("no output")?;
        let code = code.trim().parse().map_err(|_| format!("curl: {text}"))?;
        Ok((code, body.to_string()))
    }

    /// POST a JSON list of alerts to its v2 API, as Prometheus would.
    pub fn post(&self, alerts: &Value) -> Result<(), String> {
        let out = Command::new(require_tool("curl"))
            .args([
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
            ])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(alerts.to_string())
            .arg(format!("{}/api/v2/alerts", self.url()))
            .output()
            .map_err(|e| e.to_string())?;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "200" => Ok(()),
            other => Err(format!("POST answered {other}")),
        }
    }

    /// The active alerts it holds (what `amtool alert` shows).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        match self.get("/api/v2/alerts")? {
            (200, body) => {
                let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                Ok(v.as_array().cloned().unwrap_or_default())
            }
            other => Err(format!("{other:?}")),
        }
    }

    /// Active alerts from the sidecar, as `alertname/container_id-or-type` keys, sorted.
    pub fn sidecar_keys(&self) -> Result<Vec<String>, String> {
        let mut keys: Vec<String> = self
            .alerts()?
            .iter()
            .filter(|a| a["labels"]["source"] == "nsexporter-sidecar")
            .map(key)
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// `alertname/<container_id or type>` of an alert from the API.
pub fn key(a: &Value) -> String {
    let l = &a["labels"];
    let what = l["container_id"]
        .as_str()
        .or(l["type"].as_str())
        .unwrap_or("");
    format!("{}/{what}", l["alertname"].as_str().unwrap_or(""))
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request a [`FakeAm`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An Alertmanager-shaped HTTP server: answers POSTs with the statuses the test sets
/// and records every request; status 0 reads the request and never answers (a hung
/// Alertmanager) until the client gives up. Stops on drop.
pub struct FakeAm {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The status the next requests get.
    pub status: Arc<Mutex<u16>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAm {
    pub fn start(status: u16) -> FakeAm {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(status));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (received.clone(), status.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = serve(conn, &r, &s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeAm {
            port,
            received,
            status,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_status(&self, s: u16) {
        *self.status.lock().unwrap() = s;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for FakeAm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serve requests on one keep-alive connection until it closes.
fn serve(
    conn: TcpStream,
    received: &Mutex<Vec<Received>>,
    status: &Mutex<u16>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let code = *status.lock().unwrap();
        received.lock().unwrap().push(Received {
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            status: code,
        });
        if code == 0 {
            // Hung: hold the connection, answer nothing, until the client closes it (or
            // the 5 s read timeout ends the wait).
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            return Ok(());
        }
        let text = if code == 200 { "" } else { "simulated failure" };
        write!(
            w,
            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{text}",
            text.len()
        )?;
        w.flush()?;
    }
}
