//! The cost of one host scrape: reading and parsing /proc, statvfs of each
//! filesystem. Run with `cargo bench --bench host`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hourglass::sources::host::HostCollector;
use hourglass::sources::{Collect, SampleBuf, ScrapeCtx};

fn host_collect(c: &mut Criterion) {
    let mut host = HostCollector::new();
    let mut out = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_secs(1),
    };
    c.bench_function("host_collect", |b| {
        b.iter(|| {
            out.clear();
            let ok = host.collect(ctx, &mut out).is_ok();
            black_box((ok, out.len()))
        })
    });
}

criterion_group!(benches, host_collect);
criterion_main!(benches);
