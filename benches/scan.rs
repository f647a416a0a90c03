//! Criterion benches of the scan's hot paths on this machine's real /proc (run as
//! root): the reference loop, a cold and a warm scan, and the per-scan encoding.
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
    // The same plus schedstat: exactly the files a cold scan reads.
    let mut same_files = refloop::RefLoop::new(&opts.paths.procfs).with_schedstat();
    g.bench_function("reference_loop_schedstat", |b| b.iter(|| same_files.pass()));
    let mut cold = Scanner::new(opts.clone());
    g.bench_function("scan_cold", |b| {
        b.iter(|| {
            cold.forget();
            cold.scan().expect("scan")
        })
    });
    let mut warm = Scanner::new(opts.clone());
    warm.scan().expect("scan");
    g.bench_function("scan_warm", |b| b.iter(|| warm.scan().expect("scan")));
    let mut two = Scanner::new(ScanOptions {
        threads: 2,
        ..opts.clone()
    });
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

criterion_group!(benches, scans, publish);
criterion_main!(benches);
