//! The exporter's own process, as every Prometheus exporter reports it: the `process_*`
//! figures with the names and meanings of the Prometheus client libraries (and so of
//! node_exporter's own `/metrics`), read with procfs-core's parsers from the exporter's
//! own procfs ([`OWN_PROCFS`](super::paths::OWN_PROCFS), not `--path.procfs`).

use std::io;
use std::path::Path;

use procfs_core::process::{LimitValue, Limits, Stat};
use procfs_core::{ExplicitSystemInfo, FromRead, FromReadSI, KernelStats};

/// What the client libraries' process collector reports, for this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time (`utime + stime` of `/proc/self/stat`), in seconds.
    pub cpu_seconds: f64,
    /// Resident set size (`rss` pages of `stat`), in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size (`vsize` of `stat`), in bytes.
    pub virtual_memory_bytes: u64,
    /// Entries of `/proc/self/fd`.
    pub open_fds: u64,
    /// The soft limit on open files (`Max open files` of `/proc/self/limits`); `None`
    /// when unlimited.
    pub max_fds: Option<u64>,
    /// Boot time (`btime` of `/proc/stat`) plus the process's start time (`starttime`
    /// of `stat`, in clock ticks after boot), in seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Why the figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OwnError {
    #[error("{file}: {source}")]
    Io {
        file: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: &'static str, message: String },
}

fn sysconf(var: nix::unistd::SysconfVar, fallback: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => fallback,
    }
}

/// Read this process's figures from the procfs mounted at `procfs` (its `self`).
pub fn read(procfs: &Path) -> Result<ProcessStats, OwnError> {
    let open = |file: &'static str| {
        std::fs::File::open(procfs.join(file)).map_err(|source| OwnError::Io { file, source })
    };
    let parse = |file: &'static str| {
        move |e: procfs_core::ProcError| OwnError::Parse {
            file,
            message: e.to_string(),
        }
    };
    let ticks = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100);
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let stat = Stat::from_read(open("self/stat")?).map_err(parse("self/stat"))?;
    let limits = Limits::from_read(open("self/limits")?).map_err(parse("self/limits"))?;
    // `btime` is all that is used; the system info only converts CPU times.
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: ticks,
        page_size: page,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let kernel = KernelStats::from_read(open("stat")?, &info).map_err(parse("stat"))?;
    let open_fds = std::fs::read_dir(procfs.join("self/fd"))
        .map_err(|source| OwnError::Io {
            file: "self/fd",
            source,
        })?
        .count() as u64;
    let ticks = ticks as f64;
    Ok(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_memory_bytes: stat.rss.saturating_mul(page),
        virtual_memory_bytes: stat.vsize,
        open_fds,
        max_fds: match limits.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        },
        start_time_seconds: kernel.btime as f64 + stat.starttime as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the test process itself, checked with what the kernel says otherwise.
    #[test]
    fn own_figures_are_this_process() {
        let s = read(Path::new(crate::procfs::paths::OWN_PROCFS)).unwrap();
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(s.max_fds, Some(soft));
        // This process holds stdin/out/err at least, and no more than its limit.
        assert!(s.open_fds >= 3 && s.open_fds <= soft, "{s:?}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap()
        };
        assert_eq!(s.virtual_memory_bytes, kib("VmSize:") * 1024);
        assert!(s.resident_memory_bytes > 0);
        // Started after boot and before now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds > 1.0e9 && s.start_time_seconds <= now + 1.0);
        // CPU time only grows.
        let before = s.cpu_seconds;
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = read(Path::new(crate::procfs::paths::OWN_PROCFS))
            .unwrap()
            .cpu_seconds;
        assert!(after >= before);
    }

    #[test]
    fn a_missing_procfs_is_an_error_naming_the_file() {
        let e = read(Path::new("/nonexistent-procfs")).unwrap_err();
        assert!(e.to_string().starts_with("self/stat: "), "{e}");
    }
}
