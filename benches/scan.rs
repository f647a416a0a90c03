//! Criterion benches of the scan's hot paths on this machine's real /proc (run as
//! root): the reference loops, a cold scan, the two kinds of warm scan, and the
//! per-scan encoding.
//! Side-by-side load runs at 1k/5k/20k processes are `bench/load.sh`.

#[path = "../examples/scanbench/refloop.rs"]
mod refloop;

use criterion::{criterion_group, criterion_main, Criterion};
use nsexporter::sampler::Sampler;
use nsexporter::scan::{ScanOptions, Scanner};

fn scans(c: &mut Criterion) {
    let opts = ScanOptions::default();
    let mut g = c.benchmark_group("proc");
    g.sample_size(20);
    let mut reference = refloop::RefLoop::new(&opts.paths.procfs);
    g.bench_function("reference_loop", |b| b.iter(|| reference.pass()));
    let mut fastest = refloop::RefLoop::new(&opts.paths.procfs).uid_by_fstat();
    g.bench_function("fastest_loop", |b| b.iter(|| fastest.pass()));
    // The same plus schedstat: exactly the calls a cold scan makes.
    let mut same_files = refloop::RefLoop::new(&opts.paths.procfs)
        .uid_by_fstat()
        .with_schedstat();
    g.bench_function("fastest_loop_schedstat", |b| b.iter(|| same_files.pass()));
    let mut cold = Scanner::new(opts.clone());
    g.bench_function("scan_cold", |b| {
        b.iter(|| {
            cold.forget();
            cold.scan().expect("scan")
        })
    });
    // Back-to-back iterations: the idle gap (the daemon's guard for tasks that run
    // without a tick, which these idle processes are not) is lifted so that the lone
    // idle processes are confirmed as the daemon confirms them 15 s apart.
    let quick = ScanOptions {
        idle_gap: std::time::Duration::ZERO,
        ..opts.clone()
    };
    let mut warm = Scanner::new(quick.clone());
    warm.scan().expect("scan");
    warm.scan().expect("scan");
    g.bench_function("scan_warm", |b| b.iter(|| warm.scan().expect("scan")));
    // Every process confirmed through stat, as a multi-threaded one is.
    let mut stat = Scanner::new(ScanOptions {
        idle_gap: std::time::Duration::MAX,
        ..opts.clone()
    });
    stat.scan().expect("scan");
    g.bench_function("scan_warm_reading_stat", |b| {
        b.iter(|| stat.scan().expect("scan"))
    });
    let mut two = Scanner::new(ScanOptions {
        threads: 2,
        ..quick.clone()
    });
    two.scan().expect("scan");
    two.scan().expect("scan");
    g.bench_function("scan_warm_2_threads", |b| {
        b.iter(|| two.scan().expect("scan"))
    });
    g.finish();
}

/// Publishing a snapshot: the sampler encodes both formats once per scan, so that a
/// scrape only hands out a reference.
fn publish(c: &mut Criterion) {
    let mut scanner = Scanner::new(ScanOptions::default());
    let snap = scanner.scan().expect("scan");
    let mut sampler = Sampler::new(scanner);
    c.bench_function("publish_snapshot", |b| {
        b.iter(|| sampler.publish_snapshot(snap.clone()))
    });
}

/// What a warm scan adds per known container for the runtime files: one cache lookup
/// (the files themselves are read once, when a container is first seen). 1,000
/// containers whose files are missing (cached as unknown, like any read), looked up as
/// a scan does after summarising.
fn runtime_lookups(c: &mut Criterion) {
    use nsexporter::model::{ContainerRef, Runtime};
    use nsexporter::runtime::{Locations, Reader, RuntimeCache};
    let empty = std::env::temp_dir();
    let mut cache = RuntimeCache::new(Reader::new(&empty, "/proc", Locations::default()));
    let refs: Vec<ContainerRef> = (0..1000u32)
        .map(|i| ContainerRef {
            runtime: Runtime::Containerd,
            id: format!("{:064x}", u64::from(i) * 0x9e37_79b9),
            pod_uid: format!("{i:08x}-2222-3333-4444-555555555555"),
            owner_uid: None,
        })
        .collect();
    for r in &refs {
        cache.lookup(r);
    }
    c.bench_function("runtime_lookup_1000_known_containers", |b| {
        b.iter(|| {
            for r in &refs {
                std::hint::black_box(cache.lookup(r));
            }
        })
    });
    assert_eq!(cache.reads(), 1000, "known containers are never read again");
}

criterion_group!(benches, scans, publish, runtime_lookups);
criterion_main!(benches);
