//! eventbench: the exec -> /metrics latency probe behind `bench/events.sh` and the
//! README's figures for `--scan.events` (the execs themselves come from
//! `tests/tools/execstorm.c`). Run as root, from inside the cgroup the script made
//! container-shaped (children inherit it).
//!
//! ```text
//! eventbench latency TRIALS ADDR CONTAINER_ID
//!                                 TRIALS times: start `sleep 0.2`, then poll
//!                                 http://ADDR/metrics every 5 ms until
//!                                 nsexporter_container_host_namespace_execs_total
//!                                 {container_id=CONTAINER_ID,type="net"} grows; print
//!                                 p50, p90, p99 and max of exec -> visible
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("latency") => latency(
            num(1) as usize,
            args.get(2).unwrap_or_else(|| usage()),
            args.get(3).unwrap_or_else(|| usage()),
        ),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: eventbench latency TRIALS ADDR CONTAINER_ID");
    std::process::exit(2);
}

/// The value of the exec counter for `container_id`, type net, from one scrape.
fn counter(addr: &str, container_id: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let want = format!("container_id=\"{container_id}\"");
    body.lines()
        .filter(|l| l.starts_with("nsexporter_container_host_namespace_execs_total{"))
        .filter(|l| l.contains(&want) && l.contains("type=\"net\""))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn latency(trials: usize, addr: &str, container_id: &str) {
    let mut lat = Vec::with_capacity(trials);
    let mut missed = 0;
    for _ in 0..trials {
        let before = counter(addr, container_id).unwrap_or(0.0);
        let t0 = Instant::now();
        let mut child = Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn sleep");
        let mut seen = None;
        while t0.elapsed() < Duration::from_secs(120) {
            if counter(addr, container_id).unwrap_or(0.0) > before {
                seen = Some(t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.wait();
        match seen {
            Some(d) => lat.push(d),
            None => missed += 1,
        }
        // Let the exit and the next publish settle, so trials do not overlap.
        std::thread::sleep(Duration::from_millis(300));
    }
    lat.sort();
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1e3
    };
    println!(
        "trials={} missed={missed} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
