//! A real Prometheus (Debian's /usr/bin/prometheus) on a free loopback port, killed when
//! dropped, and a small HTTP client for its query API that also times each query.
//!
//! Shared by `examples/fleetgen` and the tests that run Prometheus on real data.

// Each includer uses part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A running Prometheus; killed (by its PID) and reaped on drop.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text, written to `dir`), its TSDB
    /// in `data`, and `extra` flags; waits until it is ready (replaying a large TSDB
    /// takes a while: up to `ready_within`).
    pub fn start(
        dir: &Path,
        config: &str,
        data: &Path,
        extra: &[&str],
        ready_within: Duration,
    ) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: apt-get install -y prometheus"
        );
        let config_file = dir.join("prometheus.yml");
        fs::write(&config_file, config).expect("write prometheus.yml");
        let port = free_port();
        let log = dir.join(format!("prometheus-{port}.log"));
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS}: {e}"));
        let mut p = Prometheus { port, child, log };
        let deadline = Instant::now() + ready_within;
        loop {
            if let Ok((200, _)) = http_get(port, "/-/ready") {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {ready_within:?}:\n{}",
                p.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops it with SIGTERM (a clean TSDB shutdown) and waits.
    pub fn stop(mut self) {
        // SAFETY: signals only the child this value owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// GET an API path; the decoded `data` of a success, or the error.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let (code, body) = http_get(self.port, path)?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("GET {path}: {code}, not JSON ({e}): {body:.300}"))?;
        if v["status"] != "success" {
            return Err(format!("GET {path}: {code} {v}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query at `time` (Unix seconds).
    pub fn query(&self, expr: &str, time: i64) -> Result<Timed, String> {
        self.timed(&format!(
            "/api/v1/query?query={}&time={time}&stats=all",
            urlencode(expr)
        ))
    }

    /// A range query.
    pub fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: u64,
    ) -> Result<Timed, String> {
        self.timed(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}&stats=all",
            urlencode(expr)
        ))
    }

    fn timed(&self, path: &str) -> Result<Timed, String> {
        let began = Instant::now();
        let data = self.api(path)?;
        let wall = began.elapsed();
        let exec = data["stats"]["timings"]["execTotalTime"].as_f64();
        let samples = data["stats"]["samples"]["totalQueryableSamples"].as_u64();
        Ok(Timed {
            result: data["result"].as_array().cloned().unwrap_or_default(),
            wall,
            exec: exec.map(Duration::from_secs_f64),
            samples,
        })
    }

    /// Distinct values of `label` on the series matching `selector` (what Grafana's
    /// `label_values(selector, label)` asks), over `[start, end]`.
    pub fn label_values(
        &self,
        selector: &str,
        label: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, String> {
        let data = self.api(&format!(
            "/api/v1/series?match[]={}&start={start}&end={end}",
            urlencode(selector)
        ))?;
        let mut values: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s[label].as_str().map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query's result and what it cost: wall time at the client (request to last byte),
/// Prometheus' own execution time, and the samples it read.
#[derive(Debug, Clone)]
pub struct Timed {
    pub result: Vec<Value>,
    pub wall: Duration,
    pub exec: Option<Duration>,
    pub samples: Option<u64>,
}

/// The value of one result of an instant query (`value`) or the last of a range query
/// (`values`); NaN when there is none.
pub fn sample_value(v: &Value) -> f64 {
    let pair = if v["value"].is_array() {
        &v["value"]
    } else {
        v["values"]
            .as_array()
            .and_then(|a| a.last())
            .unwrap_or(&Value::Null)
    };
    pair[1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A label of one query result; empty when it has none.
pub fn sample_label<'a>(v: &'a Value, name: &str) -> &'a str {
    v["metric"][name].as_str().unwrap_or_default()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 GET on loopback (the body ends when the server closes).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no end of HTTP headers")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status")?;
    Ok((code, body.to_string()))
}
