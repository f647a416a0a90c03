//! Our parsers of the files a scan reads per process (`stat`, `schedstat`, `cgroup`) and
//! per mount namespace (`mountinfo`), and of `status` (read only in fixture trees),
//! against procfs-core's parsers of the same bytes, on this machine's real files: the
//! measurement behind keeping our own where we do (see `src/procfs/parse.rs`).

use criterion::{criterion_group, criterion_main, Criterion};
use nsexporter::procfs::parse::{
    parse_cgroup, parse_mountinfo_nsfs, parse_schedstat, parse_stat_view, parse_status_euid,
};
use procfs_core::{FromBufRead, FromRead};

fn read(file: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/self/{file}")).expect("read /proc/self")
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let stat = read("stat");
    g.bench_function("stat_ours", |b| {
        b.iter(|| parse_stat_view(std::hint::black_box(&stat)).is_ok())
    });
    g.bench_function("stat_procfs_core", |b| {
        b.iter(|| procfs_core::process::Stat::from_read(std::hint::black_box(&stat[..])).is_ok())
    });
    let schedstat = read("schedstat");
    g.bench_function("schedstat_ours", |b| {
        b.iter(|| parse_schedstat(std::hint::black_box(&schedstat)).is_some())
    });
    g.bench_function("schedstat_procfs_core", |b| {
        b.iter(|| {
            procfs_core::process::Schedstat::from_read(std::hint::black_box(&schedstat[..])).is_ok()
        })
    });
    // A hybrid host's cgroup file: 13 lines here.
    let cgroup = read("cgroup");
    g.bench_function("cgroup_ours", |b| {
        b.iter(|| parse_cgroup(&String::from_utf8_lossy(std::hint::black_box(&cgroup))).is_ok())
    });
    g.bench_function("cgroup_procfs_core", |b| {
        b.iter(|| procfs_core::ProcessCGroups::from_read(std::hint::black_box(&cgroup[..])).is_ok())
    });
    // This machine's mount table (some 30 lines; a node's is hundreds to thousands),
    // of which nsexporter parses only the nsfs lines.
    let mountinfo = read("mountinfo");
    g.bench_function("mountinfo_ours", |b| {
        b.iter(|| {
            parse_mountinfo_nsfs(&String::from_utf8_lossy(std::hint::black_box(&mountinfo))).1
        })
    });
    g.bench_function("mountinfo_procfs_core", |b| {
        b.iter(|| {
            procfs_core::process::MountInfos::from_buf_read(std::hint::black_box(&mountinfo[..]))
                .is_ok()
        })
    });
    let status = read("status");
    g.bench_function("status_ours", |b| {
        b.iter(|| parse_status_euid(std::hint::black_box(&status)).is_ok())
    });
    g.bench_function("status_procfs_core", |b| {
        b.iter(|| {
            procfs_core::process::Status::from_buf_read(std::hint::black_box(&status[..])).is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
