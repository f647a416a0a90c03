//! The bare proc connector loop: subscribe, receive every event, count, nothing else.
//! It is the peer that `bench/events.sh` measures nsexporter's event handling against
//! (the same events received, none acted on), and a probe of whether this process can
//! subscribe at all.
//!
//!     eventloop [SECONDS]        receive for SECONDS (default 10), then print counts
//!     eventloop --probe          subscribe and say whether it worked, and why not
//!     eventloop --probe-kernel   the same without the namespace pre-check: what the
//!                                kernel itself answers
//!
//! Output is one line of `key=value` pairs, for scripts. Needs root (as nsexporter does).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nsexporter::events::{self, Connector, Options};
use nsexporter::procfs::paths::HostPaths;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let opts = Options::default();
    let sub = match arg.as_str() {
        "--probe-kernel" => Connector::subscribe_unchecked(&opts),
        _ => events::subscribe(&HostPaths::default(), &opts),
    };
    let mut conn = match sub {
        Ok(c) => c,
        Err(e) => {
            println!("subscribed=0 reason={:?}", e.to_string());
            return ExitCode::from(3);
        }
    };
    if arg.starts_with("--probe") {
        println!("subscribed=1");
        return ExitCode::SUCCESS;
    }
    let secs: f64 = arg.parse().unwrap_or(10.0);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut msgs = Vec::with_capacity(64);
    while Instant::now() < until {
        msgs.clear();
        if let Err(e) = conn.recv(&mut msgs) {
            eprintln!("eventloop: recv: {e}");
            return ExitCode::FAILURE;
        }
    }
    let s = conn.stats();
    println!(
        "subscribed=1 events={} execs={} lost={} overruns={} malformed={}",
        s.events, s.execs, s.lost, s.overruns, s.malformed
    );
    ExitCode::SUCCESS
}
